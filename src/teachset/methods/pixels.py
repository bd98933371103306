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
        return self.make_many(data, per_class, [seed], progress)[0]

    def make_many(self, data: TeachingData, per_class: int, seeds: list[int], progress: bool = False) -> list[TeachingSet]:
        """One teaching set per seed, taught together: their images share each pass through the networks."""
        dataset = data.dataset
        start = load_start(self.init, data)
        if start is not None:
            labels, images = torch.from_numpy(start.labels), start.tensor().repeat(len(seeds), 1, 1, 1)
        else:
            dataset.check_per_class(per_class)
            labels, drawn = balanced_labels(dataset.num_classes, per_class), []
            for seed in seeds:
                rng = np.random.default_rng(seed)
                drawn.append(np.concatenate([rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)
                                             for c in range(dataset.num_classes)]))
            images = dataset.tensor(np.concatenate(drawn))
        logits = torch.logit(images.clamp(0.02, 0.98))
        networks, features = teaching_spaces(self, data)
        teacher = Teacher(self, torch.sigmoid, labels, networks, seed=list(seeds)).fit(logits, features, dataset.labels, progress)
        params, b, rendered = self.record(data, int(np.bincount(labels.numpy()).max())), len(labels), teacher.images()
        return [TeachingSet.generated(rendered[k * b : (k + 1) * b], labels, dataset.class_names, dataset.record(),
                                      f"pixels-{self.student}", params, seed, curve=teacher.curves_[k])
                for k, seed in enumerate(seeds)]
