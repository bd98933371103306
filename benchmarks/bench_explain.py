"""Counterfactual aids (issue 22): is the change real, minimal and realistic, and what does it cost?

For each dataset (elpv at 64 px with the bundled generator; MNIST at 32 px with a generator trained
on its train split), a herding teaching set of `--per-class` real train images per class, each
inverted into the generator and moved towards `--targets` other classes (all of them, or a seeded
sample per image) exactly as `teachset explain` does (teachset.explain: same proxy, options and
path). Measured on the last frame of every path:
- flip rate: the share classified as the target class by a classifier (standardised logistic
  regression) trained on real train images in VGG16 features, an extractor the path never used
  (its proxy is MobileNetV2 + AlexNet); beside it the share of first frames already classified as
  the target (should be near 0) and as their own class, and the classifier's accuracy on real
  held-out images;
- LPIPS (AlexNet) from the first frame to the last, beside the LPIPS between real held-out images
  of the same class and of different classes (the scale of "a different image");
- realism (teachset.realism, VGG16): class consistency (under a classifier of the real held-out
  images, of the target class), median nearest-real and density ratios and the share in the real
  range, for the last frames, the first frames (reconstructions) and the real held-out reference;
- the proxy's own probability of the target on the last frame (what the path optimised);
- seconds per strip (one path), and the one-off inversion and proxy set-up.
Strips (the real image, then the frames: the first its reconstruction, the last the counterfactual,
then the change map) are written under --out, with one overview PNG per dataset, for looking at them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_explain.py \\
        --mnist-generator runs/generators/00000-generator-mnist-32px/checkpoint --per-class 2 --targets 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from teachset import defaults
from teachset.data import load_dataset
from teachset.data.splits import Split
from teachset.explain import ExplainOptions, Proxy, change_map, counterfactual_path
from teachset.features import extract
from teachset.features.lpips import LPIPS
from teachset.generators import load_generator
from teachset.generators.invert import invert
from teachset.imaging import image_grid, png_bytes, to_uint8
from teachset.methods import TeachingData, make_method
from teachset.realism import Realism, _classifier, summarize
from teachset.teaching_set import TeachingSet

INDEPENDENT = defaults.REALISM_EXTRACTOR  # vgg16: no path uses it


def pairs_of(ts: TeachingSet, targets: int | None, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(image, target class) for every image: every other class, or `targets` of them drawn per image."""
    out = []
    for i, label in enumerate(ts.labels):
        others = [c for c in range(len(ts.class_names)) if c != label]
        chosen = others if targets is None or targets >= len(others) else sorted(rng.choice(others, targets, replace=False))
        out += [(i, int(t)) for t in chosen]
    return out


def as_seen(images: torch.Tensor) -> torch.Tensor:
    """Images as a person sees them in a strip: quantised to 8 bits."""
    return torch.from_numpy(to_uint8(images)).float() / 255


def real_lpips(lpips: LPIPS, test: TeachingData, rng: np.random.Generator, n: int = 200) -> dict:
    """Mean LPIPS between random pairs of real held-out images of the same class and of different classes."""
    labels = test.dataset.labels
    a, b = rng.integers(0, len(labels), (2, n))
    with torch.no_grad():
        d = lpips(test.dataset.tensor(a), test.dataset.tensor(b)).numpy()
    same = labels[a] == labels[b]
    keep = a != b
    return {"same_class": float(d[same & keep].mean()), "other_class": float(d[~same].mean())}


def bench(name: str, source: str, generator_path: str, args, out: Path) -> dict:
    options = ExplainOptions(steps=args.steps, frames=args.frames)
    assert INDEPENDENT not in options.extractors
    rng = np.random.default_rng(args.seed)
    generator = load_generator(generator_path).freeze()
    dataset = load_dataset(source, image_size=generator.image_size)
    split = Split()
    train, _ = TeachingData.load(dataset, defaults.EXTRACTOR, progress=False).split(split)
    ts = make_method("herding").make(train, args.per_class, seed=args.seed)
    ts.save(out / name / "teaching_set", overwrite=True)
    pairs = pairs_of(ts, args.targets, rng)

    begin = time.perf_counter()
    codes, _ = invert(generator, ts.tensor(), torch.from_numpy(ts.labels), measure=False)
    inversion_s = time.perf_counter() - begin
    begin = time.perf_counter()
    proxy = Proxy(train, options.extractors)
    proxy_s = time.perf_counter() - begin

    strips_dir = out / name / "strips"
    strips_dir.mkdir(parents=True, exist_ok=True)
    firsts, lasts, proxy_last, seconds, rows = [], [], [], [], []
    for i, target in pairs:
        begin = time.perf_counter()
        frames, probabilities = counterfactual_path(generator, proxy, codes[i], int(ts.labels[i]), target, options)
        seconds.append(time.perf_counter() - begin)
        stem = f"{i:02d}_{ts.class_names[ts.labels[i]]}_to_{ts.class_names[target]}"
        change = torch.from_numpy(change_map(frames[0], frames[-1])).float().div(255).expand_as(frames[0])
        # the real image, the frames (the first: its reconstruction), then where it changed
        strip = image_grid(torch.cat([ts.tensor()[i:i + 1], frames, change[None]]), ncol=len(frames) + 2)
        (strips_dir / f"{stem}.png").write_bytes(png_bytes(strip))
        rows.append(np.asarray(strip))
        firsts.append(frames[0])
        lasts.append(frames[-1])
        proxy_last.append(probabilities[-1])
        print(f"  {name} {stem}: proxy p(target) {' '.join(f'{p:.2f}' for p in probabilities)} ({seconds[-1]:.1f} s)", flush=True)
    width = max(r.shape[1] for r in rows)
    overview = Image.fromarray(np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])) + ((0, 0),) * (r.ndim - 2),
                                                      constant_values=255) for r in rows]))
    overview.resize((overview.width * 2, overview.height * 2), Image.Resampling.NEAREST).save(out / name / "overview.png")

    first, last = as_seen(torch.stack(firsts)), as_seen(torch.stack(lasts))
    sources = np.array([int(ts.labels[i]) for i, _ in pairs])
    targets = np.array([t for _, t in pairs])

    independent_train, independent_test = TeachingData.load(
        dataset, INDEPENDENT, defaults.network_input_size(INDEPENDENT, dataset.image_size), progress=False).split(split)
    classifier = _classifier().fit(independent_train.features, independent_train.dataset.labels)
    held_out_accuracy = float((classifier.predict(independent_test.features) == independent_test.dataset.labels).mean())
    predicted_last = classifier.predict(extract(independent_train.network, last))
    predicted_first = classifier.predict(extract(independent_train.network, first))

    lpips = LPIPS("alexnet")
    with torch.no_grad():
        moved = lpips(first, last).numpy()

    realism = Realism(independent_train, independent_test)

    def realism_of(images: torch.Tensor, labels: np.ndarray) -> dict:
        frames_set = TeachingSet.generated(images, labels, ts.class_names, dataset.record(), "counterfactual", {}, None)
        return summarize(realism.score(frames_set))

    result = {
        "dataset": name, "generator": generator_path, "image_size": dataset.image_size, "classes": len(ts.class_names),
        "teaching_set": f"herding, {args.per_class} per class, seed {args.seed}", "paths": len(pairs),
        "options": {"frames": options.frames, "steps": options.steps, "proxy_extractors": list(options.extractors),
                    "independent_extractor": INDEPENDENT},
        "flip_rate": float((predicted_last == targets).mean()),
        "first_frame_as_target": float((predicted_first == targets).mean()),
        "first_frame_as_own_class": float((predicted_first == sources).mean()),
        "independent_held_out_accuracy": held_out_accuracy,
        "proxy_last_probability": float(np.mean(proxy_last)), "proxy_flip_rate": float(np.mean(np.array(proxy_last) > 0.5)),
        "lpips_first_to_last": {"mean": float(moved.mean()), "median": float(np.median(moved))},
        "lpips_real_pairs": real_lpips(lpips, independent_test, rng),
        "realism_last": realism_of(last, targets), "realism_first": realism_of(first, sources),
        "realism_real_held_out": {k: v for k, v in realism.reference_.items() if not k.endswith("_range")}
        | {"density_range": realism.reference_["density_range"]},
        "seconds_per_strip": {"mean": float(np.mean(seconds)), "max": float(np.max(seconds))},
        "inversion_s": inversion_s, "proxy_setup_s": proxy_s,
    }
    return result


def markdown(results: list[dict]) -> str:
    def f(x, d=2):
        return f"{x:.{d}f}"

    lines = [("| dataset | paths | flip rate (VGG16 LR) | first frame as target / own | proxy p(target) last | "
              "LPIPS first→last (mean) | LPIPS real same / other class | last: consistency, nearest, density, in range | "
              "first frames: same | real held-out: same | s per strip |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        def real(x):
            return f"{f(x['class_consistency'])}, {f(x['nearest_ratio'])}, {f(x['density_ratio'])}, {f(x['in_real_range']) if 'in_real_range' in x else '0.90 (by construction)'}"
        lines.append(
            f"| {r['dataset']} ({r['image_size']} px, {r['classes']} classes) | {r['paths']} | {f(r['flip_rate'])} "
            f"(held-out acc. {f(r['independent_held_out_accuracy'])}) | {f(r['first_frame_as_target'])} / "
            f"{f(r['first_frame_as_own_class'])} | {f(r['proxy_last_probability'])} | {f(r['lpips_first_to_last']['mean'], 3)} | "
            f"{f(r['lpips_real_pairs']['same_class'], 3)} / {f(r['lpips_real_pairs']['other_class'], 3)} | {real(r['realism_last'])} | "
            f"{real(r['realism_first'])} | {real(r['realism_real_held_out'])} | {f(r['seconds_per_strip']['mean'], 1)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["elpv", "mnist"], choices=["elpv", "mnist"])
    parser.add_argument("--elpv-generator", default="teachset:elpv-64")
    parser.add_argument("--mnist-generator", default=None, help="a generator trained on MNIST's train split at 32 px")
    parser.add_argument("--per-class", type=int, default=2, help="herding teaching images per class")
    parser.add_argument("--targets", default="1", help="other classes per image: a number (drawn per image) or 'all'")
    parser.add_argument("--steps", type=int, default=ExplainOptions.steps, help="optimisation steps per path")
    parser.add_argument("--frames", type=int, default=ExplainOptions.frames)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-explain")
    args = parser.parse_args()
    args.targets = None if args.targets == "all" else int(args.targets)
    out = Path(args.out)
    cases = {"elpv": ("elpv", args.elpv_generator), "mnist": ("mnist", args.mnist_generator)}
    results = []
    for name in args.datasets:
        source, generator = cases[name]
        if generator is None:
            parser.error(f"--{name}-generator is needed for {name}")
        print(f"{name}: {generator}", flush=True)
        results.append(bench(name, source, generator, args, out))
    record = {"machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
              "command": " ".join(["benchmarks/bench_explain.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
              "results": results}
    (out / "results.json").write_text(json.dumps(record, indent=2))
    print(markdown(results))
    print(f"strips and overviews: {out}/<dataset>/")


if __name__ == "__main__":
    main()
