"""`teachset demo`: every teaching method on a bundled dataset, fresh LC and NN students, an HTML report."""

from __future__ import annotations

import time

from .. import defaults
from ..errors import TeachsetError
from ..data.splits import Split
from .common import add_command, add_dataset_args, add_feature_args, add_options, load_dataset, options_from


def cmd_demo(args) -> None:
    from ..evaluate import format_table
    from ..experiment import run_experiment
    from ..generators import load_generator
    from ..generators import bundled_generators
    from ..methods import make_method, method_names
    from ..runs import new_run_dir

    start = time.perf_counter()
    names = args.methods or method_names("selection")
    generator_name = args.generator or (f"teachset:{args.dataset}-{args.size}" if args.teachers else None)
    if args.teachers and not args.generator and f"{args.dataset}-{args.size}" not in bundled_generators():
        raise TeachsetError(f"no generator is bundled for {args.dataset} at {args.size} px (bundled: {', '.join(bundled_generators())}); "
                            "train one with `teachset generator train` and pass --generator, or run without teachers: --teachers")
    methods = {name: make_method(name) for name in names}
    if args.teachers:
        generator = load_generator(generator_name)
        methods |= {f"latent-{s}": make_method("latent", generator=generator, student=s, epochs=args.teacher_epochs)
                    for s in args.teachers}
    dataset = load_dataset(args, source=args.dataset)
    options = {k: v for k, v in vars(args).items() if k != "func"} | {"methods": names, "generator": generator_name}
    run_dir = new_run_dir(args.out, f"demo-{dataset.name}", options)
    results = run_experiment(dataset, methods, run_dir, per_class=args.per_class, repeats=args.repeats, options=options,
                             split=options_from(args, Split), extractor=args.extractor, input_size=args.input_size)
    print(format_table(results["summary"]))
    print(f"(always answering the majority class scores {results['majority_rate']:.3f})")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {run_dir / 'report.html'}")


def add_commands(sub) -> None:
    from ..methods import method_names

    p = add_command(sub, "demo", cmd_demo, "every selection method and the latent teachers on a bundled dataset, fresh LC "
                    "and NN students, an HTML report", """
teachset demo                                  # elpv, 5 per class, 5 repeats, selection methods and latent teachers
teachset demo --dataset digits --per-class 2 --repeats 3 --teachers   # selection methods only (no generator for digits)
teachset demo --methods random kcenters --extractor alexnet
""")
    p.add_argument("--dataset", default="elpv", help="dataset (default elpv)")
    add_dataset_args(p, positional=False)
    add_feature_args(p)
    add_options(p, Split)
    p.add_argument("--methods", nargs="+", choices=method_names("selection"), default=None, help="selection methods (default: all)")
    p.add_argument("--per-class", type=int, default=defaults.PER_CLASS)
    p.add_argument("--repeats", type=int, default=defaults.REPEATS, help="teaching sets per method (seeds 0..R-1), each scored by fresh students")
    p.add_argument("--teachers", nargs="*", choices=list(defaults.STUDENTS), default=list(defaults.STUDENTS),
                   help="latent teachers to run (default: lc nn; none: --teachers with no value)")
    p.add_argument("--teacher-epochs", type=int, default=200, help="teacher epochs in the demo (default 200, to keep it short; "
                   "the paper: 1000)")
    p.add_argument("--generator", default=None, help="generator for the latent teachers (default: the bundled teachset:DATASET-SIZE)")
    p.add_argument("--out", default=defaults.RUNS_DIR, help=f"folder under which the numbered run folder is made (default {defaults.RUNS_DIR})")
