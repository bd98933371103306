"""What every selection method shares: the base class, the registry, and the one result type (TeachingSet)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Callable, ClassVar

import numpy as np

from ..data import ImageDataset
from ..errors import TeachsetError
from ..teaching_set import TeachingSet

METHODS: dict[str, type["SelectionMethod"]] = {}


def register(cls):
    METHODS[cls.name] = cls
    return cls


class SelectionMethod(ABC):
    """A method that picks `per_class` real images of each class. Subclasses are dataclasses whose
    fields are the method's parameters (recorded in the teaching set)."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def select(self, features: np.ndarray, labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
        """Indices into the dataset, `per_class` of each class, classes in order."""


def each_class(labels: np.ndarray, per_class: int, pick: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply `pick(indices of one class) -> chosen positions within it` to every class, in class order."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        positions = np.asarray(pick(members), dtype=np.int64)
        assert len(positions) == per_class and len(set(positions.tolist())) == per_class, positions
        chosen.append(members[positions])
    return np.concatenate(chosen)


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), float64, never negative."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


def make_method(name: str, **params) -> SelectionMethod:
    if name not in METHODS:
        raise TeachsetError(f"unknown selection method '{name}'; choose one of: {', '.join(METHODS)}")
    cls = METHODS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TeachsetError(f"method '{name}' has no parameter(s) {unknown}; it takes: {', '.join(allowed) or 'none'}")
    return cls(**params)


def select_teaching_set(method: str | SelectionMethod, dataset: ImageDataset, features: np.ndarray, per_class: int,
                        seed: int = 0, extractor: str | None = None) -> TeachingSet:
    """Run a selection method on a dataset's features and return its TeachingSet."""
    method = make_method(method) if isinstance(method, str) else method
    dataset.check_per_class(per_class)
    if len(features) != len(dataset):
        raise TeachsetError(f"{len(features)} feature rows for {len(dataset)} images; recompute the features")
    indices = method.select(features, dataset.labels, per_class, np.random.default_rng(seed))
    params = {"per_class": per_class, "extractor": extractor, **dataclasses.asdict(method)}
    return TeachingSet.from_selection(dataset, indices, method=method.name, params=params, seed=seed)
