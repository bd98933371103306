"""`teachset evaluate` and `teachset report`: score teaching sets with fresh proxy students; the HTML report."""

from __future__ import annotations

from .. import defaults
from .common import add_command, add_feature_args


def cmd_evaluate(args) -> None:
    from ..evaluate import evaluate_sets, format_table, results_context, summarize, write_results
    from ..runs import new_run_dir
    from ..teaching_set import TeachingSet

    sets = [TeachingSet.load(p) for p in args.teaching_sets]
    rows, realism, dataset = evaluate_sets(sets, args.dataset, args.extractor, args.input_size, args.repeats, args.seed,
                                           args.skip_bad, proxy=args.proxy)
    summary = summarize(rows)
    print(format_table(summary))
    options = {k: v for k, v in vars(args).items() if k != "func"}
    out = new_run_dir(args.out, f"evaluate-{dataset.name}", options)
    write_results(out, rows, summary, results_context(dataset, args.extractor, options, realism=realism))
    print(f"results: {out / 'results.json'} (and results.csv, summary.csv); make a report with: teachset report {out}")


def cmd_report(args) -> None:
    from ..report import write_report

    print(f"report: {write_report(args.results, args.out, args.display)}")


def add_commands(sub) -> None:
    p = add_command(sub, "evaluate", cmd_evaluate, "score teaching sets with fresh LC and NN proxy students", """
teachset evaluate sets/elpv-kcenters sets/elpv-random --repeats 5
teachset evaluate sets/mine --dataset my_images/ --extractor alexnet
teachset evaluate sets/a sets/b --proxy studies/pilot/calibration/proxy.json   # beside: the people it predicts
""")
    p.add_argument("teaching_sets", nargs="+", help="teaching-set folders")
    p.add_argument("--dataset", default=None, help="the dataset to score on (default: the one recorded in each teaching set)")
    p.add_argument("--skip-bad", action="store_true", help="with --dataset: leave out unreadable files")
    add_feature_args(p)
    p.add_argument("--repeats", type=int, default=defaults.REPEATS,
                   help=f"fresh students per teaching set and student kind (default {defaults.REPEATS})")
    p.add_argument("--seed", type=int, default=0, help="first student seed")
    p.add_argument("--proxy", default=None, metavar="PROXY_JSON", help="also report the accuracy this calibrated proxy "
                   "(`teachset study calibrate`) predicts people reach with each set")
    p.add_argument("--out", default=defaults.RUNS_DIR,
                   help=f"folder under which a numbered results folder is made (default {defaults.RUNS_DIR})")

    p = add_command(sub, "report", cmd_report, "write the HTML report of an evaluation or demo run", """
teachset report runs/00000-demo-elpv
teachset report runs/00001-evaluate-elpv/results.json --out report.html
teachset report runs/00004-run-elpv --display 256 --out report-256.html   # as a study at --display 256 shows them
""")
    p.add_argument("results", help="a run folder or its results.json")
    p.add_argument("--out", default=None, help="the HTML file (default: report.html beside results.json)")
    p.add_argument("--display", default=None, metavar="working|original|N",
                   help="the teaching images' display resolution: the working size, the originals (every shown set must have "
                        "them), or N px enlarged from the working size as a study at --display N shows them (default: "
                        "originals where exported, else the working size)")
