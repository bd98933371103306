"""What every teaching method and every evaluation is given: a dataset and its features under
one frozen extractor (the human proxy's metric space)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import defaults
from .data import ImageDataset
from .data.splits import Parts, Split, split_dataset
from .errors import TeachsetError
from .features import FrozenExtractor, build_extractor, dataset_features


@dataclass(frozen=True)
class TeachingData:
    dataset: ImageDataset
    features: np.ndarray  # (N, d) float32: dataset's images through the extractor
    extractor: str = defaults.EXTRACTOR
    input_size: int | None = None  # the extractor's input size (None: the dataset's)

    def __post_init__(self):
        if len(self.features) != len(self.dataset):
            raise TeachsetError(f"{len(self.features)} feature rows for {len(self.dataset)} images; compute the features again")

    @classmethod
    def load(cls, dataset: ImageDataset, extractor: str = defaults.EXTRACTOR, input_size: int | None = None,
             progress: bool = True) -> "TeachingData":
        """The dataset with its features, read from the feature cache or computed (and cached)."""
        return cls(dataset, dataset_features(dataset, extractor, input_size, progress=progress), extractor, input_size)

    @cached_property
    def network(self) -> FrozenExtractor:
        """The frozen extractor itself (differentiable in its input images)."""
        return build_extractor(self.extractor, self.input_size)

    def split(self, split: Split, parts: Parts | None = None) -> tuple["TeachingData", "TeachingData"]:
        """(what teaching methods may see, what students are scored on): the train and test parts
        (`parts`: the dataset's, already split that way, shared with other feature spaces)."""
        parts = parts or split_dataset(self.dataset, split)
        return (TeachingData(parts.train, self.features[parts.train_index], self.extractor, self.input_size),
                TeachingData(parts.test, self.features[parts.test_index], self.extractor, self.input_size))

    def record(self) -> dict:
        """What a teaching set records about the features it was made with."""
        return {"extractor": self.extractor, "input_size": self.input_size}
