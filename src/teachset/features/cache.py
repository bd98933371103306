"""Features of a whole dataset, computed once per (dataset, extractor, image size) and kept on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import defaults
from ..atomic import atomic_write_bytes
from ..data import ImageDataset
from .extractors import FrozenExtractor, build_extractor


def extract(extractor: FrozenExtractor, images: torch.Tensor | ImageDataset, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Features (n, d) float32 of float images (n, C, H, W) in [0, 1], or of a whole dataset, in batches."""
    n = len(images)
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc=f"features ({extractor.name})", unit="batch",
                          disable=not progress, leave=False):
            stop = min(start + batch_size, n)
            batch = images.tensor(slice(start, stop)) if isinstance(images, ImageDataset) else images[start:stop]
            chunks.append(extractor(batch).float().numpy())
    return np.concatenate(chunks)


def cache_key(dataset: ImageDataset, extractor: str, input_size: int | None) -> str:
    return f"{dataset.fingerprint}-{extractor}-{dataset.image_size}px" + (f"-in{input_size}" if input_size else "")


def cached_features(dataset: ImageDataset, extractor: str, input_size: int | None) -> tuple[Path, np.ndarray | None]:
    """(the cache file of these features, the features if it holds them)."""
    path = defaults.cache_dir() / "features" / f"{cache_key(dataset, extractor, input_size)}.npy"
    if path.is_file():
        try:
            features = np.load(path, mmap_mode="c")  # read from the file as needed, not copied into private memory
            if features.ndim == 2 and len(features) == len(dataset):
                return path, features
        except (OSError, ValueError):
            pass  # unreadable: compute again and replace it
    return path, None


def store_features(path: Path, features: np.ndarray) -> None:
    """Written beside its final name and renamed into place: an interrupted run never leaves a file a later run would read."""
    atomic_write_bytes(path, lambda file: np.save(file, features))


def dataset_features(dataset: ImageDataset, extractor: str = defaults.EXTRACTOR, input_size: int | None = None,
                     weights_file: str | None = None, progress: bool = True, use_cache: bool = True) -> np.ndarray:
    """Features of every image of `dataset`, (N, d) float32, read from the cache or computed and cached."""
    path, features = cached_features(dataset, extractor, input_size)
    if use_cache and features is not None:
        return features
    features = extract(build_extractor(extractor, input_size, weights_file), dataset, progress=progress)
    if use_cache:
        store_features(path, features)
    return features
