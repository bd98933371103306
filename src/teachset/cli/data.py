"""`teachset datasets` and `teachset features`: what data and extractors there are; features, cached."""

from __future__ import annotations

import time

from ..errors import TeachsetError
from .common import add_command, add_dataset_args, add_feature_args, load_dataset


def cmd_datasets(args) -> None:
    from ..data import BUNDLED

    for d in BUNDLED.values():
        state = "" if d.available() else "  [not installed: sudo apt-get install dataset-fashion-mnist]"
        print(f"{d.name:<14} {d.description}{state}")


def cmd_features(args) -> None:
    from ..defaults import cache_dir
    from ..features import EXTRACTORS, dataset_features

    if args.list:
        for spec in EXTRACTORS.values():
            print(f"{spec.name:<13} {spec.description}")
        return
    if not args.dataset:
        raise TeachsetError("give a dataset (or --list); e.g. teachset features elpv")
    dataset = load_dataset(args)
    start = time.perf_counter()
    if args.workers > 1 or args.executor == "ray":
        from ..experiments.features import sharded_features

        features = sharded_features(dataset, args.extractor, args.input_size, workers=args.workers, executor=args.executor,
                                    address=args.ray_address)
    else:
        features = dataset_features(dataset, args.extractor, args.input_size, args.weights, use_cache=not args.recompute)
    seconds = time.perf_counter() - start
    print(f"{features.shape[0]} x {features.shape[1]} features ({args.extractor}) in {seconds:.1f} s, cached under {cache_dir()}")


def add_commands(sub) -> None:
    add_command(sub, "datasets", cmd_datasets, "list the bundled datasets", "teachset datasets")
    p = add_command(sub, "features", cmd_features, "compute (and cache) a dataset's features with a frozen extractor", """
teachset features --list
teachset features elpv                          # mobilenet_v2 at 64 px, cached
teachset features path/to/folder --extractor alexnet --size 128
teachset features elpv --extractor resnet50 --weights resnet50-0676ba61.pth
teachset features fashion-mnist --workers 2 --executor ray      # in shards on a local Ray cluster
""")
    p.add_argument("dataset", nargs="?", help="a bundled dataset name, a class-per-folder folder, or a CSV manifest")
    add_dataset_args(p, positional=False)
    add_feature_args(p)
    p.add_argument("--weights", default=None, help="a local torchvision weights file (resnet18/resnet50/mobilenet_v2)")
    p.add_argument("--recompute", action="store_true", help="ignore the cache and compute again")
    p.add_argument("--list", action="store_true", help="list the extractors")
    p.add_argument("--workers", type=int, default=1, help="compute in shards on this many workers (each gets cores / workers threads)")
    p.add_argument("--executor", choices=["pool", "ray"], default="pool", help="local processes, or Ray")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: a local one)")
