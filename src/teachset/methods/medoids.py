"""medoids: per-class k-medoids (alternating assignment and medoid update, Park & Jun 2009).

Within each class: start from k-means++ seeding (from the seed), then repeat until nothing
changes: assign every point to its nearest medoid; make each cluster's medoid the member with
the least total distance to the others. The medoids are the teaching images: typical members
of each mode of the class. Memory and time grow linearly with the class: a medoid's cost is summed
over its cluster in chunks, and, in a class of more than SAMPLE images, over the cluster's members
in one seeded random sample of SAMPLE of them (CLARA's idea, Kaufman & Rousseeuw 1990); up to SAMPLE
the update is exact.
"""

from dataclasses import dataclass

import numpy as np

from ..distances import sq_distances
from ..options import option
from .base import SelectionMethod, each_class, register


SAMPLE = 2000


def medoid(points: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> int:
    """The point with the least total distance to the `reference` points (its cluster, or a sample of it)."""
    cost = np.concatenate([np.sqrt(sq_distances(points[i : i + chunk], reference)).sum(1) for i in range(0, len(points), chunk)])
    return int(np.argmin(cost))


def k_medoids(points: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 100) -> np.ndarray:
    medoids = [int(rng.integers(len(points)))]
    nearest = sq_distances(points, points[medoids])[:, 0]
    for _ in range(k - 1):  # k-means++ seeding
        p = nearest / nearest.sum() if nearest.sum() > 0 else None
        nxt = int(rng.choice(len(points), p=p))
        while nxt in medoids:  # only when points repeat
            nxt = int(rng.integers(len(points)))
        medoids.append(nxt)
        nearest = np.minimum(nearest, sq_distances(points, points[[nxt]])[:, 0])
    medoids = np.array(medoids)
    sampled = np.ones(len(points), dtype=bool)  # the members each medoid's cost is summed over
    if len(points) > SAMPLE:
        sampled[:] = False
        sampled[rng.choice(len(points), SAMPLE, replace=False)] = True
    for _ in range(max_iter):
        assignment = np.sqrt(sq_distances(points, points[medoids])).argmin(1)
        assignment[medoids] = np.arange(k)  # a medoid always belongs to its own cluster
        updated = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(assignment == c)
            reference = members[sampled[members]] if sampled[members].any() else members
            updated[c] = members[medoid(points[members], points[reference])]
        if np.array_equal(updated, medoids):
            break
        medoids = updated
    return medoids


@register
@dataclass
class Medoids(SelectionMethod):
    name = "medoids"
    summary = "k-medoids per class (typical members of each mode)"
    max_iter: int = option(100, "at most this many assignment and update rounds", minimum=1)

    def select(self, features, labels, per_class, rng):
        return each_class(labels, per_class, lambda m: k_medoids(features[m], per_class, rng, self.max_iter))
