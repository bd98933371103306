"""Features of a large dataset computed in shards on an executor's workers (a local pool or Ray),
written to the same cache file a single process writes, with the same values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import ImageDataset
from .executors import make_executor


@dataclass(frozen=True)
class Shard:
    spec: dict  # what load_dataset needs: each worker opens the (cached) dataset itself
    extractor: str
    input_size: int | None
    start: int
    stop: int
    workers: int


def shard_features(shard: Shard) -> tuple[int, np.ndarray]:
    from ..data import load_dataset
    from ..features import build_extractor, extract
    from ..threads import configure_threads

    configure_threads(shard.workers)
    dataset = load_dataset(**shard.spec)
    images = dataset.tensor(slice(shard.start, shard.stop))
    return shard.start, extract(build_extractor(shard.extractor, shard.input_size), images)


def sharded_features(dataset: ImageDataset, extractor: str, input_size: int | None = None, *, workers: int = 2,
                     executor: str = "pool", address: str | None = None, shard_size: int = 4096) -> np.ndarray:
    """dataset_features, computed by `workers` workers in shards of `shard_size` images (read from the cache if there)."""
    from ..features.cache import cached_features, store_features

    path, features = cached_features(dataset, extractor, input_size)
    if features is not None:
        return features
    spec = {k: v for k, v in dataset.spec.items()}
    shards = [Shard(spec, extractor, input_size, start, min(start + shard_size, len(dataset)), workers)
              for start in range(0, len(dataset), shard_size)]
    pool = make_executor(executor, workers, address)
    try:
        parts = dict(result for _, result in pool.map(shard_features, shards))
    finally:
        pool.close()
    features = np.concatenate([parts[s.start] for s in shards])
    store_features(path, features)
    return features
