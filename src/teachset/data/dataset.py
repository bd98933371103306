"""The in-memory dataset every part of teachset reads: square images, integer labels, class names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from ..errors import TeachsetError


@dataclass
class ImageDataset:
    """Labeled square images, stored as uint8 (N, C, H, W); C is 1 (grayscale) or 3 (RGB).

    `spec` holds what `load_dataset` needs to load the same data again (recorded in every
    artifact); `info` says how the pixels were made (label rule, channel mapping, intensity
    scaling); `skipped` lists unreadable files left out when asked to skip them. A part of a
    dataset (`part`: the train or test split) records which split it is and the fingerprint of
    the whole dataset it came from (`origin`).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]
    spec: dict
    groups: list[str] | None = None
    info: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split: dict | None = None  # for a part: {"protocol", "test_fraction", "split_seed", "by", "part"}
    origin: str | None = None  # for a part: the whole dataset's fingerprint
    sources: list[str] | None = None  # the way back to each original: its file, or "<bundled name>:<index>"

    def __post_init__(self):
        n = len(self.images)
        assert self.images.dtype == np.uint8 and self.images.ndim == 4, self.images.shape
        assert self.images.shape[1] in (1, 3) and self.images.shape[2] == self.images.shape[3]
        assert self.labels.shape == (n,) and len(self.ids) == n
        assert self.groups is None or len(self.groups) == n
        assert self.sources is None or len(self.sources) == n
        if n == 0:
            raise TeachsetError(f"dataset '{self.name}' has no images; point it at a folder or manifest with images in it")
        present = np.unique(self.labels)
        if len(present) < 2:
            only = self.class_names[int(present[0])]
            raise TeachsetError(
                f"dataset '{self.name}' has a single class ('{only}'); teaching needs at least two classes to tell apart"
            )
        empty = [c for i, c in enumerate(self.class_names) if i not in present]
        if empty:
            raise TeachsetError(f"dataset '{self.name}': class(es) {empty} have no images; add images or remove the class")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def tensor(self, index=None) -> torch.Tensor:
        """Images as float32 in [0, 1], shape (n, C, H, W); all of them, or those at `index`."""
        images = self.images if index is None else self.images[index]
        return torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(255.0)  # a copy: the images may be read-only

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of pixels, labels and class names: the key of caches, recorded in artifacts."""
        h = hashlib.sha256()
        h.update(json.dumps({"shape": list(self.images.shape), "classes": self.class_names}).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()[:16]

    def record(self) -> dict:
        """What every artifact records about the dataset it came from: enough to load it again, check
        it, and make the same split again."""
        return {"name": self.name, "fingerprint": self.origin or self.fingerprint, "spec": self.spec, "info": self.info,
                **({"split": self.split} if self.split else {})}

    def subset(self, index, split: dict) -> "ImageDataset":
        """The images at `index` as a dataset of their own that remembers the whole one (`split`: which part)."""
        index = np.asarray(index, dtype=np.int64)
        return ImageDataset(self.name, self.images[index], self.labels[index], list(self.class_names),
                            [self.ids[i] for i in index], self.spec, None if self.groups is None else [self.groups[i] for i in index],
                            self.info, split=split, origin=self.origin or self.fingerprint,
                            sources=None if self.sources is None else [self.sources[i] for i in index])

    def describe(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self.class_counts().items())
        return f"{self.name}: {len(self)} images, {self.image_size} px, {self.channels} channel(s) ({counts})"

    def check_per_class(self, per_class: int) -> None:
        """Raise a clear error if some class has fewer than `per_class` images."""
        if per_class < 1:
            raise TeachsetError(f"per-class count must be at least 1, got {per_class}")
        where = f" in the {self.split['part']} split" if self.split else ""
        for name, count in self.class_counts().items():
            if count < per_class:
                advice = " or hold out a smaller share of the images" if self.split else ""
                raise TeachsetError(
                    f"class '{name}' has {count} image(s){where}, fewer than the {per_class} per class asked for; "
                    f"ask for fewer{advice}")
