"""Foundation benchmark on elpv at 64 px: feature throughput per extractor, time per selection
method, and the demo's total wall time (fresh feature cache) with its accuracy table.

    .venv/bin/python benchmarks/bench_foundation.py [--images 512] [--skip-demo]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from teachset.data import load_dataset
from teachset.errors import TeachsetError
from teachset._torchvision import models
from teachset.features import EXTRACTORS, FrozenExtractor, build_extractor, extract
from teachset.methods import TeachingData, make_method, method_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512, help="images per extractor throughput measurement")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")

    start = time.perf_counter()
    dataset = load_dataset("elpv", image_size=64)
    print(f"load elpv at 64 px: {time.perf_counter() - start:.1f} s ({len(dataset)} images)\n")

    print("| extractor | dim | images/s (batch 128, forward only) |\n|---|---|---|")
    images = dataset.tensor(slice(0, args.images))
    os.environ["TEACHSET_OFFLINE"] = "1"  # measure what is here; never wait on a download
    for name in EXTRACTORS:
        label = name
        try:
            extractor = build_extractor(name)
        except TeachsetError:  # no ImageNet weights offline: time the same network with random weights
            body = getattr(models, name)()
            body.fc = torch.nn.Identity()
            extractor, label = FrozenExtractor(name, body), f"{name} (random weights: none offline; timing only)"
        extract(extractor, images[:128])  # warm-up
        start = time.perf_counter()
        features = extract(extractor, images)
        seconds = time.perf_counter() - start
        print(f"| {label} | {features.shape[1]} | {len(images) / seconds:,.0f} |")

    data = TeachingData.load(dataset, progress=False)
    print("\n| method | seconds per teaching set (5 per class, mobilenet_v2 features, median of 3 seeds) |\n|---|---|")
    for name in method_names("selection"):
        times = []
        for seed in range(3):
            start = time.perf_counter()
            make_method(name).make(data, per_class=5, seed=seed)
            times.append(time.perf_counter() - start)
        print(f"| {name} | {np.median(times):.3f} |")

    if args.skip_demo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TEACHSET_CACHE": os.path.join(tmp, "cache")}  # cold cache: features included
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "teachset", "demo", "--out", os.path.join(tmp, "runs")],
                                env=env, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
    print(f"\ndemo (teachset demo, cold feature cache): {seconds:.0f} s wall\n")
    print(result.stdout)


if __name__ == "__main__":
    main()
