"""Human-proxy student heads on frozen features: LC (paper eq. 3) and NN (eq. 4)."""

from __future__ import annotations

from .linear import LinearStudent, init_linear, linear_objective, train_linear
from .prototype import PrototypeStudent, class_scores

STUDENTS = {"lc": LinearStudent, "nn": PrototypeStudent}


def make_student(kind: str, seed: int = 0, **params):
    """A fresh student of kind 'lc' or 'nn' (the NN student has no randomness; the seed only reaches LC)."""
    from ..errors import TeachsetError

    if kind not in STUDENTS:
        raise TeachsetError(f"unknown student '{kind}'; choose one of: {', '.join(STUDENTS)}")
    return LinearStudent(random_state=seed, **params) if kind == "lc" else PrototypeStudent(**params)


__all__ = ["STUDENTS", "LinearStudent", "PrototypeStudent", "class_scores", "init_linear", "linear_objective",
           "make_student", "train_linear"]
