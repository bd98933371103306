"""herding: class-balanced kernel herding (Chen, Welling & Smola 2010) in feature space.

Within each class, points are chosen one at a time so that the kernel mean of the chosen set
approaches the kernel mean of the class: the t+1-th point maximises
    mean_j k(x, x_j) - 1 / (t + 1) * sum_{s <= t} k(x, x_s)
over the class's points not yet chosen. k is a Gaussian (RBF) kernel whose bandwidth is the
median pairwise distance within the class. Memory and time grow linearly with the class: above
SAMPLE images the bandwidth and the class's kernel mean are estimated on a seeded random sample
of SAMPLE of them (below it the method is exact and deterministic).
"""

from dataclasses import dataclass

import numpy as np

from ..distances import sq_distances
from .base import SelectionMethod, each_class, register


SAMPLE = 2000


def kernel_herding(points: np.ndarray, k: int, rng: np.random.Generator, chunk: int = 2048) -> np.ndarray:
    sample = points if len(points) <= SAMPLE else points[rng.choice(len(points), SAMPLE, replace=False)]
    d2 = sq_distances(sample, sample)
    bandwidth2 = float(np.median(d2[np.triu_indices(len(sample), 1)])) or 1.0

    def kernel(a, b):
        return np.exp(-sq_distances(a, b) / bandwidth2)

    mean_embedding = np.concatenate([kernel(points[i : i + chunk], sample).mean(1) for i in range(0, len(points), chunk)])
    chosen, attraction = [], np.zeros(len(points))
    for t in range(k):
        score = mean_embedding - attraction / (t + 1)
        score[chosen] = -np.inf
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        attraction += kernel(points, points[[nxt]])[:, 0]
    return np.array(chosen)


@register
@dataclass
class Herding(SelectionMethod):
    name = "herding"
    summary = "kernel herding per class (matches the class's kernel mean)"

    def select(self, features, labels, per_class, rng):
        return each_class(labels, per_class, lambda m: kernel_herding(features[m], per_class, rng))
