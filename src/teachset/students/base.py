"""What both student heads share: predictions from their class scores."""

from __future__ import annotations

import numpy as np
import torch


class ClassScoreStudent:
    """predict_proba / predict / score from a subclass's `decision_function` (n, C) class scores."""

    def decision_function(self, features) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, features) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.decision_function(features)), dim=1).numpy()

    def predict(self, features) -> np.ndarray:
        return self.decision_function(features).argmax(axis=1)

    def score(self, features, labels) -> float:
        return float((self.predict(features) == np.asarray(labels)).mean())
