"""Distances between feature vectors."""

from __future__ import annotations

import numpy as np


BLOCK = 4096  # rows of b converted to float64 at a time: memory beyond the result stays small whatever len(b)


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), float64, never negative."""
    a = a.astype(np.float64)
    aa = (a * a).sum(1)[:, None]
    d = np.empty((len(a), len(b)))
    for start in range(0, len(b), BLOCK):
        part = b[start : start + BLOCK].astype(np.float64)
        d[:, start : start + BLOCK] = aa + (part * part).sum(1)[None, :] - 2 * a @ part.T
    return np.maximum(d, 0.0, out=d)
