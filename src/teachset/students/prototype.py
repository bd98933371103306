"""The NN student (paper eq. 4): the teaching examples are prototypes in the frozen feature space.

p(y = c | x) is a softmax over class scores built from similarities K(x, x_i) / temperature:
- similarity "cosine" (default): cos(f(x), f(x_i)), in [-1, 1], so temperature 0.1 makes scores
  in [-10, 10] whatever the extractor; "euclidean": minus the squared Euclidean distance.
- several prototypes per class, `rule`:
  "logsumexp" (default): class score = log sum_{i in c} exp(K(x, x_i) / T), i.e. eq. 4 with
  the probability mass of all prototypes of a class added; it tends to the nearest prototype
  as T -> 0 and is smooth for the teacher's gradient;
  "max": the nearest prototype of each class (hard nearest-neighbour decision);
  "mean": one prototype per class, the mean of its teaching examples' features (prototypical
  networks; with "euclidean" the decision is scikit-learn's NearestCentroid).
No training: fitting stores the prototypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import defaults
from ..errors import TeachsetError
from .base import ClassScoreStudent

SIMILARITIES = ("cosine", "euclidean")
RULES = ("logsumexp", "max", "mean")


def class_scores(features: torch.Tensor, prototypes: torch.Tensor, proto_labels: torch.Tensor, num_classes: int, *,
                 similarity: str = defaults.NN_SIMILARITY, temperature: float = defaults.NN_TEMPERATURE,
                 rule: str = defaults.NN_RULE) -> torch.Tensor:
    """(n, C) class logits of the NN student; differentiable in features and prototypes."""
    if similarity not in SIMILARITIES or rule not in RULES:
        raise TeachsetError(f"NN student: similarity must be one of {SIMILARITIES} and rule one of {RULES}")
    if rule == "mean":
        onehot = F.one_hot(proto_labels, num_classes).to(prototypes.dtype)  # (b, C)
        prototypes = (onehot.T @ prototypes) / onehot.sum(0).clamp_min(1).unsqueeze(1)
        proto_labels = torch.arange(num_classes, device=prototypes.device)
    if similarity == "cosine":
        sim = F.normalize(features, dim=1) @ F.normalize(prototypes, dim=1).T
    else:
        sim = -torch.cdist(features, prototypes).pow(2)
    sim = sim / temperature  # (n, b)
    if rule == "mean":
        return sim
    mask = proto_labels.unsqueeze(0) == torch.arange(num_classes, device=sim.device).unsqueeze(1)  # (C, b)
    masked = sim.unsqueeze(1).masked_fill(~mask.unsqueeze(0), float("-inf"))  # (n, C, b)
    return masked.logsumexp(dim=2) if rule == "logsumexp" else masked.amax(dim=2)


@dataclass
class PrototypeStudent(ClassScoreStudent):
    """NN student. `fit` stores `prototypes_` and `prototype_labels_`; deterministic."""

    similarity: str = defaults.NN_SIMILARITY
    temperature: float = defaults.NN_TEMPERATURE
    rule: str = defaults.NN_RULE

    def fit(self, features, labels, num_classes: int | None = None) -> "PrototypeStudent":
        self.prototypes_ = torch.as_tensor(np.asarray(features), dtype=torch.float64)
        self.prototype_labels_ = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.num_classes_ = int(num_classes or int(self.prototype_labels_.max()) + 1)
        return self

    def decision_function(self, features) -> np.ndarray:
        X = torch.as_tensor(np.asarray(features), dtype=torch.float64)
        out = [class_scores(X[i : i + 4096], self.prototypes_, self.prototype_labels_, self.num_classes_,
                            similarity=self.similarity, temperature=self.temperature, rule=self.rule)
               for i in range(0, len(X), 4096)]
        return torch.cat(out).numpy()
