"""Speed and scale: how each step of the protocol grows with the number of images.

For n = 2k, 10k, 30k and 70k Fashion-MNIST images at 64 px (a class-balanced subset of n; at 70k the whole
set), each step in a fresh process, its wall time, peak private memory (anonymous: what the process holds itself)
and peak resident memory (which also counts the pages of the memory-mapped caches it read): loading (cold: decoded and
cached; cached: memory-mapped), features (MobileNetV2, and VGG16 for the transfer students and realism; cached after), each
selection method,
one teacher of 1,000 epochs (the paper's: LC student, one proxy; an untrained generator of the
right size, as the cost does not depend on its weights) and the evaluation of one set (fresh LC
and NN students on the test split, transfer students, realism). Then the fitted growth exponent
of each step (time ~ n^k), and the full protocol on elpv: every selection method and the paper's
latent-LC and latent-NN teachers, 5 seeds, 1,000 teacher epochs, every student.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 2000,10000,30000,70000] [--workers 2] [--skip-protocol] [--transfer ""]
        [--steps features,herding,teacher] [--teacher-epochs 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import threading
import time

import numpy as np

STEPS = ("load (cold)", "load (cached)", "features", "random", "kcenters", "forgetting", "herding", "medoids",
         "teacher", "evaluation")


def private_mb() -> float:
    """This process's anonymous (private) memory in MB: what the memory-mapped dataset and feature caches
    do not count in, unlike the resident size; the resident size where /proc does not say."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Anonymous:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def watch_private(peak: list[float]) -> None:
    """Keeps peak[0] at the highest private memory seen (a daemon thread, every 20 ms)."""
    def poll():
        while True:
            peak[0] = max(peak[0], private_mb())
            time.sleep(0.02)

    threading.Thread(target=poll, daemon=True).start()


def _step(name: str, n: int, cache: str, queue, transfer: tuple[str, ...], teacher_epochs: int = 1000) -> None:
    """One step in this (fresh) process; puts (seconds, peak resident MB, peak private MB)."""
    os.environ["TEACHSET_CACHE"] = cache
    peak = [0.0]
    watch_private(peak)
    import torch

    from teachset.data import load_dataset
    from teachset.data.splits import Split
    from teachset.evaluate import evaluation_parts
    from teachset.methods import make_method
    from teachset.threads import configure_threads

    configure_threads(1)
    parts = {"transfer": transfer} if transfer else {"transfer": (), "realism_extractor": "mobilenet_v2"}
    whole = None if name.startswith("load") else load_dataset("fashion-mnist", image_size=64)  # a load is timed alone
    start = time.perf_counter()
    if name.startswith("load"):
        load_dataset("fashion-mnist", image_size=64)
    else:
        rng = np.random.default_rng(0)
        dataset = whole if n >= len(whole) else whole.subset(np.sort(rng.choice(len(whole), n, replace=False)), {"part": f"first {n}"})
        if name == "features":  # the teachers' (MobileNetV2) and the transfer and realism students' (VGG16)
            evaluation_parts(dataset, Split(), progress=False, **parts)
        else:
            train, evaluator, realism = evaluation_parts(dataset, Split(), progress=False, **parts)  # from the caches
            if name == "evaluation":
                start = time.perf_counter()
                ts = make_method("random").make(train, 5, 0)
                evaluator.evaluate(ts, repeats=1)
                realism.score(ts)
            elif name.startswith("teacher"):
                from teachset.generators.autoencoder import Autoencoder
                from teachset.seeded import seeded_init

                generator = seeded_init(Autoencoder(image_size=64, width=16, code_grid=8, latent_dim=256, num_classes=10),
                                        torch.Generator().manual_seed(0))
                start = time.perf_counter()
                make_method("latent", generator=generator, student="lc", epochs=teacher_epochs, extractors=[], views=0, anchor_weight=0.0,
                            start="prior").make(train, 5, 0)
            else:
                start = time.perf_counter()
                make_method(name).make(train, 5, 0)
    seconds = time.perf_counter() - start
    time.sleep(0.05)  # one more poll
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, peak[0]))


def measure(name: str, n: int, cache: str, transfer: tuple[str, ...], teacher_epochs: int = 1000) -> tuple[float, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_step, args=(name, n, cache, queue, transfer, teacher_epochs))
    process.start()
    result = queue.get()
    process.join()
    return result


def protocol(workers: int) -> float:
    """The paper's full protocol on elpv through `teachset run`, in seconds."""
    from teachset.experiments import build_experiment, run_grid
    from teachset.experiments.spec import method_table
    from teachset.methods import method_names

    methods = [method_table(m) for m in method_names("selection")]
    methods += [method_table(label, epochs=1000) for label in ("latent-lc", "latent-nn")]
    experiment = build_experiment({"name": "paper", "seeds": 5, "methods": methods,
                                   "datasets": [{"source": "elpv", "generator": "teachset:elpv-64"}]})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_grid(experiment, f"{tmp}/run", workers=workers, progress=False).close()
        return time.perf_counter() - start


def show(figure: tuple[float, float, float]) -> str:
    seconds, resident, private = figure
    return f"{seconds:.1f} s, peak {private:.0f} MB private ({resident:.0f} MB resident)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000,30000,70000")
    parser.add_argument("--workers", type=int, default=2, help="workers of the elpv protocol run")
    parser.add_argument("--skip-protocol", action="store_true")
    parser.add_argument("--transfer", default="vgg16", help="extractors of the transfer students, also realism's first "
                        "('' for none, realism on MobileNetV2: the sweep without VGG16 features, whose cost is linear in n)")
    parser.add_argument("--steps", default=",".join(STEPS[2:]), help="the steps after loading to measure, comma-separated")
    parser.add_argument("--teacher-epochs", type=int, default=1000, help="the teacher step's epochs (its memory does not "
                        "grow with them)")
    parser.add_argument("--cache", default=None, help="the dataset and feature cache to use (default: a new temporary one; "
                        "steps after `features` read the features it cached)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here too")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    transfer = tuple(t for t in args.transfer.split(",") if t)
    steps = [step for step in STEPS[2:] if step in args.steps.split(",")]
    figures: dict[str, dict[int, tuple[float, float, float]]] = {step: {} for step in STEPS}
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or temporary
        for step in ("load (cold)", "load (cached)"):
            figures[step] = {70000: measure(step, 70000, cache, transfer)}
            print(f"{step}, 70,000 images: {show(figures[step][70000])}", flush=True)
        for n in sizes:
            for step in steps:
                figures[step][n] = measure(step, n, cache, transfer, args.teacher_epochs)
                print(f"n={n} {step}: {show(figures[step][n])}", flush=True)
    print("\n| step | " + " | ".join(f"n={n:,}" for n in sizes) + " | exponent |")
    print("|---" * (len(sizes) + 2) + "|")
    for step in steps:
        times = [figures[step][n][0] for n in sizes]
        exponent = np.polyfit(np.log(sizes), np.log(np.maximum(times, 1e-3)), 1)[0] if len(sizes) > 1 else float("nan")
        cells = " | ".join(show(figures[step][n]) for n in sizes)
        label = f"teacher ({args.teacher_epochs:,} epochs)" if step == "teacher" else step
        print(f"| {label} | {cells} | {exponent:.2f} |")
    if not args.skip_protocol:
        seconds = protocol(args.workers)
        print(f"\nthe paper's full protocol on elpv (5 selection methods + latent-LC + latent-NN, 5 seeds, 1,000 teacher "
              f"epochs, every student), {args.workers} workers: {seconds:.0f} s")
        figures["protocol"] = {0: (seconds, 0.0, 0.0)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({step: {str(n): v for n, v in values.items()} for step, values in figures.items()}, f, indent=2)


if __name__ == "__main__":
    main()
