"""Teaching methods: one file each, one registry (METHODS), one result type (TeachingSet)."""

from . import forgetting, herding, kcenters, medoids, random  # noqa: F401  (each registers itself)
from .base import METHODS, SelectionMethod, make_method, select_teaching_set

SELECTION_METHODS = tuple(METHODS)

__all__ = ["METHODS", "SELECTION_METHODS", "SelectionMethod", "make_method", "select_teaching_set"]
