"""Generator benchmark on elpv, at the checkpoint's image size: training throughput of each phase
with the checkpoint's own training options (in float32 and, where the device computes it natively,
bfloat16 autocast), its quality against held-out real images (with the
real-vs-real floor), and inversion error on a held-out teaching set. For an upsampling stage (`generator train
--base`): what limits it, the held-out real images shrunk to the base's size and brought back bilinearly and through
the stage, and the base's reconstructions brought back both ways.

    .venv/bin/python benchmarks/bench_generator.py [--generator teachset:elpv-64] [--device auto]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from teachset.data import load_dataset
from teachset.generators import load_generator
from teachset.generators.invert import invert
from teachset.generators.quality import evaluate_generator, format_quality
from teachset.generators.devices import resolve_device, resolve_precision, training_backend
from teachset.generators.train import GeneratorTrainer, TrainOptions


def throughput(dataset, options: dict, device: str, steps: int = 15) -> tuple[str, dict]:
    """images/s of each phase the checkpoint's run had: reconstruction (+ adversarial where weighted), or a
    conditional GAN's one adversarial phase."""
    out = {}
    precisions = dict.fromkeys(["fp32", resolve_precision("auto", resolve_device(device))])
    o = TrainOptions(**options)
    phases = [("adversarial (cgan)", 1.0)] if o.model == "cgan" else \
        [("reconstruction", 1.0)] + ([("reconstruction + adversarial", 0.0)] if o.adversarial_weight else [])
    with tempfile.TemporaryDirectory() as tmp:
        for (phase, start), precision in itertools.product(phases, precisions):
            run = TrainOptions(**{**options, "minutes": None, "steps": 10**6, "adversarial_start": start})
            trainer = GeneratorTrainer(run, Path(tmp), device, precision).setup(dataset)
            with training_backend(trainer.device):  # the backend settings a training run has
                trainer.train_step()
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize()
                begin = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step()
                out[phase, precision] = steps * run.batch_size / (time.perf_counter() - begin)  # each step ends on a .item()
    return trainer.device_name(), out


@torch.no_grad()
def upsampling_limits(generator, dataset, held: list[str]) -> None:
    """Quality at the full size of images that pass through the base's size: what an upsampling stage can reach."""
    import torch.nn.functional as F

    from teachset.features import build_extractor, dataset_features, extract
    from teachset.generators.quality import INPUT_SIZE, RealReference

    held_index = np.array([dataset.ids.index(i) for i in held])
    train_index = np.setdiff1d(np.arange(len(dataset)), held_index)
    features = dataset_features(dataset, "mobilenet_v2", INPUT_SIZE)
    reference = RealReference(features[train_index], dataset.labels[train_index], features[held_index], dataset.labels[held_index])
    net, real = build_extractor("mobilenet_v2", INPUT_SIZE), dataset.tensor(held_index)
    small = F.interpolate(real, size=generator.base.image_size, mode="area")
    base = torch.cat([generator.base.generate(generator.base.encode(small[i : i + 128])) for i in range(0, len(small), 128)])
    bilinear = lambda x: F.interpolate(x, scale_factor=2, mode="bilinear").clamp(0, 1)  # noqa: E731
    for name, images in (("real, shrunk, bilinear", bilinear(small)), ("real, shrunk, the stage", generator.refine(small)),
                         ("base reconstruction, bilinear", bilinear(base)), ("base reconstruction, the stage", generator.refine(base))):
        r = reference.compare(extract(net, images), dataset.labels[held_index])
        print(f"{name:<32} KID {r['kid']:.3f}, class consistency {r['class_consistency']:.3f} "
              f"(real {reference.floor()['class_consistency']:.3f}), diversity {r['diversity_vs_real']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="teachset:elpv-64")
    parser.add_argument("--out", default="runs/bench-generator")
    parser.add_argument("--device", default="auto", help="where training throughput is measured (auto, cpu, cuda)")
    args = parser.parse_args()
    generator = load_generator(args.generator)
    meta = getattr(generator, "meta", {})
    dataset = load_dataset("elpv", image_size=generator.image_size)
    options = asdict(TrainOptions.recorded(meta.get("options", {})))
    device, rates = throughput(dataset, options, args.device)
    for (phase, precision), rate in rates.items():
        print(f"training throughput on {device} ({generator.image_size} px, width {options.get('width')}, "
              f"batch {options.get('batch_size')}, {precision}), {phase}: {rate:.0f} images/s")
    print(f"\ncheckpoint: {args.generator}: {meta.get('step')} steps, {meta.get('train_seconds', 0) / 60:.1f} min of training")
    print(f"made by: {meta.get('command')}\n")
    held = meta["held_out_ids"]
    results = evaluate_generator(generator, dataset, held, args.out)
    print(format_quality(results))
    print(f"sample grids: {', '.join(results['grids'])}")
    if generator.kind == "upsampled":
        upsampling_limits(generator, dataset, held)
    index = np.array([dataset.ids.index(i) for i in held[:: max(1, len(held) // 10)][:10]])
    _, report = invert(generator, dataset.tensor(index), torch.from_numpy(dataset.labels[index]), steps=200)
    for stage in ("encoder", "refined"):
        r = report[stage]
        print(f"inversion of 10 held-out images, {stage}: LPIPS-AlexNet {r['lpips_alexnet']:.3f}, LPIPS-VGG16 "
              f"{r['lpips_vgg16']:.3f}, relative feature distance {r['feature_distance']:.3f}, L1 {r['l1']:.3f}")


if __name__ == "__main__":
    main()
