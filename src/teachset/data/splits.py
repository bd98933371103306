"""Seeded train/test splits: which images teaching methods and generators may see (train), and
which images fresh students are scored on (test).

The held-out protocol (the default) holds out `test_fraction` of each class. When a dataset has
groups (a plate, a well, a patient, elpv's cell type), whole groups are held out if there are
enough of them, so that near-duplicates from one group cannot sit on both sides; with fewer groups
each class's test images are spread over its groups in proportion instead. The paper's protocol
("paper") has no split: students are scored on every image that is not a teaching image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import defaults
from ..errors import OptionError, TeachsetError
from ..options import check_fields, option

if TYPE_CHECKING:
    from .dataset import ImageDataset

MIN_GROUPS = 10  # a dataset with fewer groups cannot hold whole groups out; its groups are spread instead


@dataclass(frozen=True)
class Split:
    """How to split a dataset; recorded in every artifact so that the same split can be made again."""

    protocol: str = option(defaults.PROTOCOL, "heldout: methods see the train split, students are scored on the test "
                           "split; paper: the paper's in-sample protocol", choices=("heldout", "paper"))
    test_fraction: float = option(defaults.TEST_FRACTION, "the share of each class held out for scoring", above=0)
    split_seed: int = option(defaults.SPLIT_SEED, "the seed of the train/test split (one split for every method and seed)")

    def __post_init__(self):
        check_fields(self)
        if self.test_fraction >= 1:
            raise OptionError("test_fraction", "{option} must be below 1; got " + str(self.test_fraction))

    def record(self) -> dict:
        return {"protocol": self.protocol, "test_fraction": self.test_fraction, "split_seed": self.split_seed}

    @classmethod
    def from_record(cls, record: dict | None) -> "Split":
        """The split an artifact recorded (none recorded: the paper's protocol, as before splits existed)."""
        if not record:
            return cls(protocol="paper")
        return cls(record["protocol"], record["test_fraction"], record["split_seed"])

    def indices(self, labels: np.ndarray, groups: list[str] | None, class_names: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
        """(train indices, test indices, how the test images were chosen). Under the paper's protocol
        both are every index."""
        if self.protocol == "paper":
            every = np.arange(len(labels))
            return every, every, "none"
        if groups is not None and len(set(groups)) >= MIN_GROUPS:
            test, by = _whole_groups(labels, np.asarray(groups), self.test_fraction, self.split_seed), "group"
        else:
            test, by = _spread(labels, groups, self.test_fraction, self.split_seed), "class" if groups is None else "class, spread over groups"
        train = np.setdiff1d(np.arange(len(labels)), test)
        for c, name in enumerate(class_names):
            n_train, n_test = int((labels[train] == c).sum()), int((labels[test] == c).sum())
            if n_train == 0 or n_test == 0:
                raise TeachsetError(f"class '{name}' has {n_train} train and {n_test} test image(s) under a "
                                    f"{self.test_fraction:g} held-out split; add images of it, hold out another share, "
                                    "or use the paper's protocol")
        return train, test, by


def _spread(labels: np.ndarray, groups: list[str] | None, fraction: float, seed: int) -> np.ndarray:
    """round(fraction * n) of each class (at least one), spread evenly over the class's groups."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if groups is not None:
            members = members[np.argsort([groups[i] for i in members], kind="stable")]
        k = max(1, int(round(fraction * len(members))))
        start = rng.random() * len(members) / k
        held.append(members[np.floor(start + np.arange(k) * len(members) / k).astype(int)])
    return np.sort(np.concatenate(held))


def _whole_groups(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whole groups, stratified by class, about `fraction` of the images (scikit-learn's StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = max(2, int(round(1 / fraction)))
    _, test = next(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels, groups))
    return np.sort(test)


class Parts(NamedTuple):
    train: "ImageDataset"
    test: "ImageDataset"
    train_index: np.ndarray
    test_index: np.ndarray


def split_dataset(dataset: "ImageDataset", split: Split) -> Parts:
    """The train and test parts of a dataset (and their indices in it); under the paper's protocol
    both parts are the whole dataset."""
    train, test, by = split.indices(dataset.labels, dataset.groups, dataset.class_names)
    if split.protocol == "paper":
        return Parts(dataset, dataset, train, test)
    record = {**split.record(), "by": by}
    return Parts(dataset.subset(train, record | {"part": "train"}), dataset.subset(test, record | {"part": "test"}), train, test)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) indices, `fraction` of each class held out (at least one per class), sorted."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        held.append(rng.choice(members, max(1, int(round(fraction * len(members)))), replace=False))
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held
