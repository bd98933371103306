"""medoids: per-class k-medoids (alternating assignment and medoid update, Park & Jun 2009).

Within each class: start from k-means++ seeding (from the seed), then repeat until nothing
changes: assign every point to its nearest medoid; make each cluster's medoid the member with
the least total distance to the others. The medoids are the teaching images: typical members
of each mode of the class.
"""

from dataclasses import dataclass

import numpy as np

from ..distances import sq_distances
from ..options import option
from .base import SelectionMethod, each_class, register


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
    for _ in range(max_iter):
        assignment = np.sqrt(sq_distances(points, points[medoids])).argmin(1)
        assignment[medoids] = np.arange(k)  # a medoid always belongs to its own cluster
        updated = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(assignment == c)
            cost = np.sqrt(sq_distances(points[members], points[members])).sum(1)
            updated[c] = members[int(np.argmin(cost))]
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
