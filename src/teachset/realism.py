"""How real each teaching image looks, measured in a feature space no teacher optimised against.

For every image of a teaching set, against the real images of the dataset:
- class consistency: the probability that a classifier trained on the real held-out (test) images
  gives the image its label, and whether that label is its most likely one;
- nearest-real ratio: its distance to the nearest real train image (other than itself), over the
  median of the same distance for real held-out images. Real images sit near 1; below 1 an image
  copies a train image, far above it lies off the images' manifold;
- density ratio: its mean distance to its k nearest real train images over the median of the
  same for real held-out images; real held-out images give the reference range (5th to 95th
  percentile) that a realistic image falls in.
Real held-out images are scored the same way (the classifier by cross-validation) as the reference
beside every summary: selected sets of real images score as real images do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import defaults
from .distances import sq_distances
from .features import extract
from .teaching_data import TeachingData
from .teaching_set import TeachingSet

NEIGHBOURS = 10
ROWS = 256  # rows of distances computed at a time (each row: 8 bytes per train image, three copies)


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))


@dataclass
class Realism:
    """Fitted on a dataset's train and test parts in one extractor's features (a space the teachers
    did not use). `score(teaching_set)` gives per-image measures; `reference_` the real images'."""

    train: TeachingData
    test: TeachingData
    reference_: dict = field(init=False)

    def __post_init__(self):
        held, labels = self.test.features, self.test.dataset.labels
        self.classifier_ = _classifier().fit(held, labels)
        near = self._neighbour_distances(held, None)
        self.nearest_scale_, self.density_scale_ = _scale(near[:, 0]), _scale(near.mean(1))
        folds = min(5, int(np.bincount(labels).min()))  # shuffled: datasets are often ordered by group
        probabilities = (cross_val_predict(_classifier(), held, labels, method="predict_proba",
                                           cv=StratifiedKFold(folds, shuffle=True, random_state=0))
                         if folds >= 2 else self.classifier_.predict_proba(held))
        real = self._measures(held, labels, None, probabilities, near)
        self.reference_ = {**summarize(real),
                           "density_range": [float(np.percentile(real["density_ratio"], 5)), float(np.percentile(real["density_ratio"], 95))],
                           "nearest_range": [float(np.percentile(real["nearest_ratio"], 5)), float(np.percentile(real["nearest_ratio"], 95))]}

    def _neighbour_distances(self, features: np.ndarray, exclude: list[str | None] | None) -> np.ndarray:
        """(n, k) sorted distances to the nearest real train images, each image's own train copy left out; in chunks of
        rows, so that memory grows with the train part alone (30,000 images held 3.9 GB as one matrix)."""
        position = {image_id: i for i, image_id in enumerate(self.train.dataset.ids)} if exclude is not None else {}
        nearest = []
        for start in range(0, len(features), ROWS):
            d = np.sqrt(sq_distances(features[start : start + ROWS], self.train.features))
            for row, image_id in enumerate((exclude or [])[start : start + ROWS]):
                if image_id in position:
                    d[row, position[image_id]] = np.inf
            if d.shape[1] > NEIGHBOURS:
                d = np.partition(d, NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
            nearest.append(np.sort(d, axis=1)[:, :NEIGHBOURS])
        return np.concatenate(nearest)

    def _measures(self, features, labels, exclude, probabilities=None, near=None) -> dict[str, np.ndarray]:
        p = self.classifier_.predict_proba(features) if probabilities is None else probabilities
        near = self._neighbour_distances(features, exclude) if near is None else near
        return {"label_probability": p[np.arange(len(labels)), labels], "consistent": (p.argmax(1) == labels).astype(float),
                "nearest_ratio": near[:, 0] / self.nearest_scale_, "density_ratio": near.mean(1) / self.density_scale_}

    def score(self, teaching_set: TeachingSet) -> list[dict]:
        """Per image of the set: label probability, consistent (0/1), nearest-real and density ratios, and
        whether the density ratio lies in the real images' range."""
        features = extract(self.test.network, teaching_set.tensor())
        m = self._measures(features, teaching_set.labels, teaching_set.source_ids)
        low, high = self.reference_["density_range"]
        return [{k: float(v[i]) for k, v in m.items()} | {"in_real_range": bool(low <= m["density_ratio"][i] <= high)}
                for i in range(len(teaching_set))]


def _scale(distances: np.ndarray) -> float:
    """The median distance, over the distances that are not zero (a dataset may hold exact duplicates)."""
    positive = distances[distances > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def summarize(per_image: dict | list[dict]) -> dict:
    """A set's realism in four numbers: class consistency (share consistent), mean label probability,
    median nearest-real ratio, median density ratio (and the share in the real range, where scored)."""
    if isinstance(per_image, list):
        per_image = {k: np.array([row[k] for row in per_image], dtype=float) for k in per_image[0]}
    out = {"class_consistency": float(np.mean(per_image["consistent"])),
           "label_probability": float(np.mean(per_image["label_probability"])),
           "nearest_ratio": float(np.median(per_image["nearest_ratio"])),
           "density_ratio": float(np.median(per_image["density_ratio"]))}
    if "in_real_range" in per_image:
        out["in_real_range"] = float(np.mean(per_image["in_real_range"]))
    return out


def realism_record(reference: dict, images: dict[str, list[dict]], method_of: dict[str, str],
                   extractor: str = defaults.REALISM_EXTRACTOR) -> dict:
    """What results.json records about realism: the real reference, each method's summary over its
    sets, and every image's scores by teaching-set path."""
    pooled: dict[str, list[dict]] = {}
    for path, scores in images.items():
        pooled.setdefault(method_of[path], []).extend(scores)
    return {"extractor": extractor, "reference": reference, "methods": {m: summarize(s) for m, s in pooled.items()},
            "images": images}
