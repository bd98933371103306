"""kcenters: class-balanced greedy k-center (Sener & Savarese 2018) in feature space.

Within each class: the first center is one point drawn with the seed; each next center is the
point farthest from all chosen centers (Euclidean), so the chosen points cover the class. One
random point only: deterministic given the seed.
"""

from dataclasses import dataclass

import numpy as np

from ..distances import sq_distances
from .base import SelectionMethod, each_class, register


def greedy_k_center(points: np.ndarray, k: int, first: int) -> np.ndarray:
    chosen = [first]
    nearest = sq_distances(points, points[[first]])[:, 0]
    for _ in range(k - 1):
        nearest[chosen] = -1.0  # never re-pick a center, even among duplicates
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, sq_distances(points, points[[nxt]])[:, 0])
    return np.array(chosen)


@register
@dataclass
class KCenters(SelectionMethod):
    name = "kcenters"
    summary = "greedy k-center per class (coverage)"

    def select(self, features, labels, per_class, rng):
        return each_class(labels, per_class,
                          lambda m: greedy_k_center(features[m], per_class, int(rng.integers(len(m)))))
