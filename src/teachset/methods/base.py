"""The one interface of every way to make a teaching set, and its registry.

A method is a dataclass whose fields are its typed parameters (recorded in the teaching set it
makes). Every method takes the same inputs and returns the same type:

    method = make_method("kcenters")                       # or make_method("latent", generator=..., student="nn")
    teaching_set = method.make(data, per_class=5, seed=0)  # data: TeachingData (a dataset and its features)

The TeachingSet carries its training curve where the method has one (`teaching_set.curve`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Callable, ClassVar

import numpy as np

from ..errors import OptionError, TeachsetError
from ..options import build, check_fields
from ..teaching_data import TeachingData
from ..teaching_set import TeachingSet

METHODS: dict[str, type["Method"]] = {}


def register(cls):
    METHODS[cls.name] = cls
    return cls


class Method(ABC):
    """A way to make a teaching set. Subclasses are dataclasses whose fields are the parameters."""

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str]  # "selection" (real images) or "generated"

    def __post_init__(self):
        check_fields(self)

    def params(self) -> dict:
        """The method's parameters as recorded (JSON-ready)."""
        return {f.name: _recordable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def record(self, data: TeachingData, per_class: int) -> dict:
        """Everything a teaching set records about how it was made."""
        return {"per_class": per_class, **data.record(), **self.params()}

    @abstractmethod
    def make(self, data: TeachingData, per_class: int, seed: int = 0, progress: bool = False) -> TeachingSet:
        """A teaching set of `per_class` images of each class of data.dataset, made with `seed`."""

    def make_many(self, data: TeachingData, per_class: int, seeds: list[int], progress: bool = False) -> list[TeachingSet]:
        """One teaching set per seed, the same as `make` for each (teachers make them together, faster)."""
        return [self.make(data, per_class, seed, progress) for seed in seeds]


def _recordable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_recordable(v) for v in value]
    return getattr(value, "source", None) or type(value).__name__  # e.g. a loaded generator: where it came from


class SelectionMethod(Method):
    """A method that picks `per_class` real images of each class."""

    kind = "selection"

    @abstractmethod
    def select(self, features: np.ndarray, labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
        """Indices into the dataset, `per_class` of each class, classes in order."""

    def make(self, data: TeachingData, per_class: int, seed: int = 0, progress: bool = False) -> TeachingSet:
        data.dataset.check_per_class(per_class)
        indices = self.select(data.features, data.dataset.labels, per_class, np.random.default_rng(seed))
        return TeachingSet.from_selection(data.dataset, indices, method=self.name, params=self.record(data, per_class), seed=seed)


def each_class(labels: np.ndarray, per_class: int, pick: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply `pick(indices of one class) -> chosen positions within it` to every class, in class order."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        positions = np.asarray(pick(members), dtype=np.int64)
        assert len(positions) == per_class and len(set(positions.tolist())) == per_class, positions
        chosen.append(members[positions])
    return np.concatenate(chosen)


def make_method(name: str, **params) -> Method:
    """The registered method `name` with its parameters (text values are read as the field's type)."""
    if name not in METHODS:
        raise TeachsetError(f"unknown teaching method '{name}'; choose one of: {', '.join(METHODS)}")
    return build(METHODS[name], params, f"method '{name}'")


def method_names(kind: str | None = None) -> list[str]:
    """The registered methods (of one kind: "selection" or "generated")."""
    return [name for name, cls in METHODS.items() if kind is None or cls.kind == kind]


__all__ = ["METHODS", "Method", "OptionError", "SelectionMethod", "TeachingData", "each_class", "make_method",
           "method_names", "register"]
