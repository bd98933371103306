"""`teachset run SOURCE` and `teachset demo`: the whole protocol on a dataset, or a grid from an
experiment file, resumable, on local workers or Ray; then the report and the study command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import defaults
from ..data.splits import Split
from ..errors import TeachsetError
from ..experiments.spec import GENERATED
from .common import add_command, add_options, options_from


def _experiment(args):
    from ..experiments import dataset_experiment, experiment_from_record, load_experiment

    if args.resume and not args.source:
        from ..runs import run_options

        return experiment_from_record(run_options(args.resume, "`teachset run`", "experiment.json"))
    if not args.source:
        raise TeachsetError("give a dataset (a bundled name, a folder, a CSV manifest) or an experiment.toml, or --resume RUN")
    if args.source.endswith(".toml"):
        if args.proxy:
            raise TeachsetError("with an experiment file, put proxy = \"PROXY_JSON\" in it instead of --proxy")
        return load_experiment(args.source)
    return dataset_experiment(args.source, size=args.size, classes=args.classes, channels=args.channels, skip_bad=args.skip_bad,
                              generator=args.generator, no_generator=args.no_generator, methods=args.methods,
                              teacher_epochs=args.teacher_epochs, per_class=args.per_class, seeds=args.repeats,
                              split=options_from(args, Split), generator_minutes=args.generator_minutes, explain=args.explain,
                              proxy=args.proxy)


def study_command(experiment, run_dir: Path) -> str | None:
    """The `teachset study create` line that puts the best selected and the best generated set (by the
    transfer students' held-out accuracy) of the first dataset in front of people."""
    results = run_dir / "results.json"
    if not results.is_file():
        return None
    found = json.loads(results.read_text())
    main = found["extractor"]
    best: dict[bool, tuple[float, str, str]] = {}
    for row in found["summary"]:
        if row["extractor"] == main or row["student"] == "proxy":
            continue  # rank by the students no teacher used
        paths = {r["teaching_set"] for r in found["rows"] if r["method"] == row["method"] and r["set_seed"] == 0}
        generated = experiment.method(row["method"]).name in GENERATED
        if paths and row["mean"] > best.get(generated, (-1.0,))[0]:
            best[generated] = (row["mean"], row["method"], str((run_dir / paths.pop()).resolve()))
    if not best:
        return None
    dataset = experiment.datasets[0]
    conditions = " ".join(f"--condition {shlex.quote(m)}={shlex.quote(p)}" for _, m, p in best.values())
    return (f"teachset study create --name {shlex.quote(experiment.name)} --dataset {shlex.quote(dataset.source)} "
            f"{conditions} --test-images 100")


def cmd_run(args) -> None:
    from ..atomic import write_json
    from ..evaluate import format_table
    from ..experiments import run_grid
    from ..runs import new_run_dir

    experiment = _experiment(args)
    if args.resume:
        run_dir = Path(args.resume)
    else:
        run_dir = new_run_dir(args.out, f"run-{experiment.name}", {k: v for k, v in vars(args).items() if k != "func"})
        write_json(run_dir / "experiment.json", experiment.canonical())
    store = run_grid(experiment, run_dir, workers=args.workers, executor=args.executor, ray_address=args.ray_address)
    store.close()
    results = run_dir / "results.json"
    if results.is_file():
        found = json.loads(results.read_text())
        print(format_table(found["summary"]))
        print(f"(always answering the majority class scores {found['majority_rate']:.3f})")
        print(f"report: {run_dir / 'report.html'}")
    else:
        print(f"reports: {', '.join(str(p) for p in sorted((run_dir / 'reports').glob('*/report.html')))}")
    command = study_command(experiment, run_dir)
    if command:
        print(f"put the best selected and generated sets in front of people:\n  {command}")


def add_run_args(p, source: bool = True) -> None:
    if source:
        p.add_argument("source", nargs="?", help="a bundled dataset, a folder with one sub-folder per class, a CSV manifest, "
                                                 "or an experiment.toml")
    p.add_argument("--size", type=int, default=defaults.IMAGE_SIZE, help=f"image size in pixels (default {defaults.IMAGE_SIZE})")
    p.add_argument("--channels", default=None, help="source channels for R,G,B of multi-channel TIFFs, e.g. 2,1,0")
    p.add_argument("--classes", default=None, help="keep only these classes, e.g. T-shirt-top,Shirt")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable image files instead of stopping")
    p.add_argument("--generator", default=None, help="a generator checkpoint (default: the one bundled for the dataset, "
                                                     "else one trained on its train split)")
    p.add_argument("--no-generator", action="store_true", help="selection methods only")
    p.add_argument("--generator-minutes", type=float, default=30.0, help="training budget of a generator trained for the run")
    p.add_argument("--methods", nargs="+", default=None, help="methods (default: every selection method and the latent "
                                                              "teacher); latent-lc and latent-nn are the paper's teachers")
    p.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (default: the teacher's own)")
    p.add_argument("--per-class", type=int, default=defaults.PER_CLASS, help=f"teaching images per class (default {defaults.PER_CLASS})")
    p.add_argument("--repeats", type=int, default=defaults.REPEATS, help="seeds per method: teaching sets, each scored by fresh students")
    add_options(p, Split)
    p.add_argument("--proxy", default=None, metavar="PROXY_JSON", help="a calibrated proxy (`teachset study calibrate`): "
                   "the latent teacher against it too (latent-proxy), and every set scored by the accuracy it predicts")
    p.add_argument("--explain", action="store_true", help="counterfactual strips (teachset explain) for each method's first "
                                                          "set, shown in the report")
    p.add_argument("--workers", type=int, default=1, help="cells run side by side (each worker gets cores / workers threads)")
    p.add_argument("--executor", choices=["pool", "ray"], default="pool", help="local processes, or Ray")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: a local one for the run)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue this run folder: finished cells are kept")
    p.add_argument("--out", default=defaults.RUNS_DIR, help=f"where the numbered run folder is made (default {defaults.RUNS_DIR})")


def cmd_demo(args) -> None:
    args.source, args.generator, args.no_generator = "elpv", None, False
    cmd_run(args)


def add_commands(sub) -> None:
    p = add_command(sub, "run", cmd_run, "the whole protocol on your dataset (or a grid from an experiment file): held-out split, "
                    "every method, a generator, every student, the report, and the study command", """
teachset run my_cells/                                   # trains a generator on the train split, then everything
teachset run my_cells/ --generator runs/00002-generator-my_cells-64px/checkpoint --workers 2
teachset run elpv --no-generator --repeats 3             # selection methods only
teachset run experiment.toml --workers 2                 # a grid from an experiment file
teachset run experiment.toml --executor ray --ray-address auto   # on a Ray cluster
teachset run --resume runs/00007-run-my_cells            # continue after a crash: finished cells are kept
""")
    add_run_args(p)
    p = add_command(sub, "demo", cmd_demo, "`teachset run elpv`: every method on the bundled solar cells with the bundled "
                    "generator", """
teachset demo
teachset demo --workers 2 --repeats 3
""")
    add_run_args(p, source=False)
