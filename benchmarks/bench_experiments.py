"""The experiment engine's cost and throughput.

1. Overhead per cell: a grid run by `run_grid` in this process against the same cells called
   directly (the same dataset, split, features, methods, saving, students and realism, in a plain
   loop), both from warm caches. Target: at most 5%.
2. Grid throughput (cells per minute) with 1 and 2 local workers and with Ray (2 workers on a
   local cluster started for the run), on this machine's cores. With `--teacher-epochs N` the cells
   are the default latent teacher's (N epochs, the bundled elpv generator), long enough to amortise
   each worker's start; part 1 is then skipped (the engine batches a teacher's seeds, a plain loop
   does not, so they are not the same work).

    .venv/bin/python benchmarks/bench_experiments.py [--dataset elpv] [--seeds 4] [--rounds 2]
    .venv/bin/python benchmarks/bench_experiments.py --teacher-epochs 50 --seeds 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from teachset.data import load_dataset
from teachset.data.splits import Split
from teachset.evaluate import evaluation_parts
from teachset.experiments import build_experiment, run_grid
from teachset.methods import make_method
from teachset.threads import configure_threads, cores

METHODS = [{"name": "forgetting"}, {"name": "kcenters"}, {"name": "herding"}, {"name": "medoids"}]


def direct(experiment, out: Path) -> float:
    """The grid's work as plain calls: what `teachset run` adds nothing to."""
    start = time.perf_counter()
    spec = experiment.datasets[0]
    dataset = load_dataset(**spec.load_args())
    train, evaluator, realism = evaluation_parts(dataset, Split(), progress=False)
    for cell in experiment.cells():
        ts = make_method(cell.method).make(train, cell.per_class, cell.seed)
        ts.save(out / cell.key, overwrite=True)
        evaluator.evaluate(ts, repeats=1, seed=cell.seed)
        realism.score(ts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="elpv")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="direct and engine runs, alternated; the fastest counts")
    parser.add_argument("--teacher-epochs", type=int, default=0, help="cells of the default latent teacher instead (elpv)")
    args = parser.parse_args()
    if args.teacher_epochs and args.dataset != "elpv":
        parser.error("--teacher-epochs teaches with the bundled elpv generator: leave --dataset at elpv")
    methods = [{"name": "latent", "epochs": args.teacher_epochs}] if args.teacher_epochs else METHODS
    dataset = {"source": args.dataset, "size": args.size} | ({"generator": "teachset:elpv-64"} if args.teacher_epochs else {})
    experiment = build_experiment({"name": "bench", "seeds": args.seeds, "methods": methods, "datasets": [dataset]})
    cells = len(experiment.cells())
    configure_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.teacher_epochs:  # one epoch of one seed fills the caches (dataset, features in every teacher space)
            warm = build_experiment({"name": "warm", "seeds": 1, "methods": [{"name": "latent", "epochs": 1}], "datasets": [dataset]})
            run_grid(warm, tmp / "warm", progress=False).close()
        else:
            direct(experiment, tmp / "warm")  # fills the dataset and feature caches for every run below
        plain, engine = [], []
        for r in range(0 if args.teacher_epochs else args.rounds):  # alternated, the fastest of each kept: other load only ever adds time
            plain.append(direct(experiment, tmp / "direct"))
            start = time.perf_counter()
            run_grid(experiment, tmp / f"engine-{r}", progress=False).close()
            engine.append(time.perf_counter() - start)
        print(f"{cells} cells ({', '.join(m['name'] for m in methods)} x {args.seeds} seeds on {args.dataset}), {cores()} cores\n")
        if plain:
            plain, engine = min(plain), min(engine)
            print(f"| | seconds | per cell |\n|---|---|---|\n| direct calls | {plain:.1f} | {plain / cells:.2f} |")
            print(f"| run_grid, in process | {engine:.1f} | {engine / cells:.2f} |")
            print(f"\nengine overhead: {100 * (engine - plain) / plain:+.1f}% (target <= 5%)\n")
        print("| executor | workers | seconds | cells per minute |\n|---|---|---|---|")
        for executor, workers in (("pool", 1), ("pool", 2), ("ray", 2)):
            folder = tmp / f"{executor}-{workers}"
            start = time.perf_counter()
            run_grid(experiment, folder, workers=workers, executor=executor, progress=False).close()
            seconds = time.perf_counter() - start
            print(f"| {executor} | {workers} | {seconds:.1f} | {60 * cells / seconds:.1f} |", flush=True)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
