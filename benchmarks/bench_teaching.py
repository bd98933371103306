"""Would a person learn from it? Every teaching method on held-out images, with students the
teachers never saw and the realism of every teaching image.

For each dataset (elpv at 64 px, MNIST at 32 px, a confusable pair of Fashion-MNIST classes at
32 px), 5 per class, `--seeds` seeds, the held-out protocol (methods and the generator see the
train split; students are scored on the test split), run as a `teachset run` grid:
1. every selection method, the default latent teacher, and the paper's teachers (one proxy, no
   realism term: latent-lc, latent-nn): held-out accuracy of the teachers' own students (LC, NN on
   MobileNetV2) and of the transfer students (LC, NN on VGG16, which no teacher uses), mean and 95%
   interval; each set's realism (class consistency, nearest-real and density ratios) beside the
   real held-out images'. Each dataset's run folder has the HTML report with every set.
2. the trade-off curve: the default teacher with its trust region's weight varied (0 lets the
   codes wander off the image manifold), realism against held-out transfer accuracy.

Each dataset needs a generator trained on its train split by the default recipe, e.g.
    teachset generator train mnist --size 32 --steps 14000 --out runs/generators
    teachset generator train fashion-mnist --size 32 --classes T-shirt-top,Shirt --steps 14000 --out runs/generators
(elpv's is bundled). Then (run it again to resume: a grid with the same experiment continues its folder):
    .venv/bin/python benchmarks/bench_teaching.py --mnist-generator RUN/checkpoint --fashion-generator RUN/checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from teachset.evaluate import format_table
from teachset.experiments import build_experiment, run_grid
from teachset.experiments.spec import method_table
from teachset.methods import method_names
from teachset.runs import new_run_dir

DATASETS = {
    "elpv": {"source": "elpv", "size": 64},
    "mnist": {"source": "mnist", "size": 32},
    "fashion": {"source": "fashion-mnist", "size": 32, "classes": ["T-shirt-top", "Shirt"]},
}


def realism_table(realism: dict) -> str:
    keys = ("class_consistency", "nearest_ratio", "density_ratio", "in_real_range")
    lines = ["| method | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, values in [("real held-out", realism["reference"]), *realism["methods"].items()]:
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.3f}" if k in values else "" for k in keys) + " |")
    return "\n".join(lines)


def grid(name: str, generator: str, methods: list[dict], seeds: int, out: str, workers: int) -> dict:
    experiment = build_experiment({"name": name, "seeds": seeds, "datasets": [{**DATASETS[name], "generator": generator}],
                                   "methods": methods})
    found = [d for d in sorted(Path(out).glob(f"*-teaching-{name}")) if (d / "options.json").is_file()
             and json.loads((d / "options.json").read_text()) == experiment.canonical()]
    run_dir = found[-1] if found else new_run_dir(out, f"teaching-{name}", experiment.canonical())  # resumed: its cells kept
    run_grid(experiment, run_dir, workers=workers).close()
    results = json.loads((run_dir / "results.json").read_text())
    print(format_table(results["summary"]))
    print(f"(always answering the majority class: {results['majority_rate']:.3f})\n")
    print(realism_table(results["realism"]), flush=True)
    return {"summary": results["summary"], "realism": {k: v for k, v in results["realism"].items() if k != "images"},
            "report": str(run_dir / "report.html")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="elpv,mnist,fashion", help="which of: " + ", ".join(DATASETS))
    parser.add_argument("--elpv-generator", default="teachset:elpv-64")
    parser.add_argument("--mnist-generator", default=None)
    parser.add_argument("--fashion-generator", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tradeoff", default="0,1,3,10,30", help="trust-region weights of the trade-off curve ('' to skip)")
    parser.add_argument("--tradeoff-seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="runs/bench-teaching")
    args = parser.parse_args()
    summary = {}
    for name in args.datasets.split(","):
        generator = getattr(args, f"{name}_generator")
        if not generator:
            print(f"\n## {name}: skipped (give --{name}-generator, a generator trained on its train split)")
            continue
        print(f"\n## {name} (generator {generator})\n", flush=True)
        methods = [method_table(m) for m in (*method_names("selection"), "latent", "latent-lc", "latent-nn")]
        summary[name] = grid(name, generator, methods, args.seeds, args.out, args.workers)
        if args.tradeoff:
            print("\ntrade-off (the trust region's weight):\n")
            weights = [float(w) for w in args.tradeoff.split(",")]
            curve = [method_table(f"trust region {w:g}", name="latent", anchor_weight=w) for w in weights]
            summary[name]["tradeoff"] = grid(name, generator, curve, args.tradeoff_seeds, args.out, args.workers)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_teaching.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
