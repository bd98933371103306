"""Would a person learn from it? Every teaching method on held-out images, with students the
teachers never saw and the realism of every teaching image.

For each dataset (elpv at 64 px, MNIST at 32 px, a confusable pair of Fashion-MNIST classes at
32 px), 5 per class, `--seeds` seeds, the held-out protocol (methods and the generator see the
train split; students are scored on the test split):
1. every selection method, the default latent teacher, and the paper's teachers (one proxy:
   latent with the LC or the NN student alone): held-out accuracy of the teacher's own students
   (LC, NN on MobileNetV2) and of the transfer students (LC, NN on an extractor no teacher used),
   mean and 95% interval; each set's realism (class consistency, nearest-real and density ratios)
   beside the real held-out images'. Each dataset's run folder has the HTML report with every set.
2. the trade-off curve: the default teacher with its trust region's weight varied (0 lets the
   codes wander off the image manifold), realism against held-out transfer accuracy.

Each dataset needs a generator trained on its train split by the default recipe, e.g.
    teachset generator train mnist --size 32 --steps 14000 --out runs/generators
    teachset generator train fashion-mnist --size 32 --classes T-shirt-top,Shirt --steps 14000 --out runs/generators
(elpv's is bundled). Then:
    .venv/bin/python benchmarks/bench_teaching.py --mnist-generator RUN/checkpoint --fashion-generator RUN/checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from teachset import defaults
from teachset.data import load_dataset
from teachset.evaluate import format_table
from teachset.experiment import run_experiment
from teachset.generators import load_generator
from teachset.methods import make_method, method_names
from teachset.runs import new_run_dir

DATASETS = {
    "elpv": {"source": "elpv", "size": 64, "classes": None},
    "mnist": {"source": "mnist", "size": 32, "classes": None},
    "fashion": {"source": "fashion-mnist", "size": 32, "classes": "T-shirt-top,Shirt"},
}
PAPER = {"extractors": (), "views": 0, "anchor_weight": 0.0}  # the paper's teacher: one proxy, no realism term


def methods_for(generator, epochs: int) -> dict:
    methods = {name: make_method(name) for name in method_names("selection")}
    methods["latent"] = make_method("latent", generator=generator, epochs=epochs)
    for student in ("lc", "nn"):
        methods[f"latent-{student} (paper)"] = make_method("latent", generator=generator, epochs=epochs, student=student, **PAPER)
    return methods


def realism_table(realism: dict) -> str:
    keys = ("class_consistency", "nearest_ratio", "density_ratio", "in_real_range")
    lines = ["| method | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, values in [("real held-out", realism["reference"]), *realism["methods"].items()]:
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.3f}" if k in values else "" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="elpv,mnist,fashion", help="which of: " + ", ".join(DATASETS))
    parser.add_argument("--elpv-generator", default="teachset:elpv-64")
    parser.add_argument("--mnist-generator", default=None)
    parser.add_argument("--fashion-generator", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200, help="teacher epochs (the demo's)")
    parser.add_argument("--tradeoff", default="0,0.3,1,3,10", help="trust-region weights of the trade-off curve ('' to skip)")
    parser.add_argument("--tradeoff-seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/bench-teaching")
    args = parser.parse_args()
    summary = {}
    for name in args.datasets.split(","):
        config, generator_path = DATASETS[name], getattr(args, f"{name}_generator")
        if not generator_path:
            print(f"\n## {name}: skipped (give --{name}-generator, a generator trained on its train split)")
            continue
        dataset = load_dataset(config["source"], image_size=config["size"], classes=config["classes"])
        generator = load_generator(generator_path)
        print(f"\n## {dataset.describe()}; generator {generator_path}\n", flush=True)
        run_dir = new_run_dir(args.out, f"teaching-{name}", {"dataset": dataset.spec, "generator": generator_path,
                                                              "seeds": args.seeds, "epochs": args.epochs})
        results = run_experiment(dataset, methods_for(generator, args.epochs), run_dir, per_class=defaults.PER_CLASS,
                                 repeats=args.seeds, options={"generator": generator_path})
        print(format_table(results["summary"]))
        print(f"(always answering the majority class: {results['majority_rate']:.3f})\n")
        print(realism_table(results["realism"]), flush=True)
        entry = {"summary": results["summary"], "realism": {k: v for k, v in results["realism"].items() if k != "images"},
                 "report": str(run_dir / "report.html")}
        if args.tradeoff:
            weights = [float(w) for w in args.tradeoff.split(",")]
            curve_dir = new_run_dir(args.out, f"tradeoff-{name}", {"weights": weights})
            curve = run_experiment(dataset, {f"trust region {w:g}": make_method("latent", generator=generator, epochs=args.epochs,
                                                                                anchor_weight=w) for w in weights},
                                   curve_dir, per_class=defaults.PER_CLASS, repeats=args.tradeoff_seeds,
                                   options={"generator": generator_path, "weights": weights})
            print("\ntrade-off (trust-region weight):\n" + format_table(curve["summary"]))
            print(realism_table(curve["realism"]), flush=True)
            entry["tradeoff"] = {"summary": curve["summary"], "realism": curve["realism"]["methods"],
                                 "report": str(curve_dir / "report.html")}
        summary[name] = entry
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_teaching.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
