"""pixels: the same teacher with the images themselves as free parameters (dataset distillation,
Wang et al. 2018), the control for the latent teacher. Pixels are kept in [0, 1] through a
sigmoid; they start from real images of each class drawn with the seed (or from a teaching set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..options import option
from ..teaching_set import TeachingSet
from .base import Method, TeachingData, register
from .teacher import Teacher, TeacherOptions, balanced_labels, load_start, teaching_spaces


@register
@dataclass
class PixelTeacher(TeacherOptions, Method):
    name = "pixels"
    summary = "the same teacher on the pixels themselves (dataset distillation, the control)"
    kind = "generated"
    init: str | None = option(None, "start from this teaching set's images instead of real images drawn with the seed",
                              flag=False)

    def make(self, data: TeachingData, per_class: int, seed: int = 0, progress: bool = False) -> TeachingSet:
        dataset = data.dataset
        start = load_start(self.init, data)
        if start is not None:
            labels, images = torch.from_numpy(start.labels), start.tensor()
        else:
            dataset.check_per_class(per_class)
            labels = balanced_labels(dataset.num_classes, per_class)
            rng = np.random.default_rng(seed)
            index = np.concatenate([rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)
                                    for c in range(dataset.num_classes)])
            images = dataset.tensor(index)
        logits = torch.logit(images.clamp(0.02, 0.98))
        networks, features = teaching_spaces(self, data)
        teacher = Teacher(self, torch.sigmoid, labels, networks, seed=seed).fit(logits, features, dataset.labels, progress)
        params = self.record(data, int(np.bincount(labels.numpy()).max()))
        return TeachingSet.generated(teacher.images(), labels, dataset.class_names, dataset.record(), f"pixels-{self.student}",
                                     params, seed, curve=teacher.curve_)
