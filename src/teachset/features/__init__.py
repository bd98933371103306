"""Frozen human-proxy feature extractors and the on-disk feature cache."""

from .cache import dataset_features, extract
from .extractors import EXTRACTORS, FrozenExtractor, build_extractor

__all__ = ["EXTRACTORS", "FrozenExtractor", "build_extractor", "dataset_features", "extract"]
