"""pixels: the same teacher with the images themselves as free parameters (dataset distillation,
Wang et al. 2018), the control for the latent teacher. Pixels are kept in [0, 1] through a
sigmoid; they start from real images of each class drawn with the seed (or from a teaching set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import ImageDataset
from ..features import build_extractor
from .teacher import Teacher, TeacherOptions, balanced_labels, generated_teaching_set, options_record


def teach_pixels(dataset: ImageDataset, features: np.ndarray, options: TeacherOptions, per_class: int = 5,
                 extractor: str = "mobilenet_v2", input_size: int | None = None, init_set=None,
                 curve_path: Path | None = None, progress: bool = True):
    """(TeachingSet of learned pixels, the training curve)."""
    if init_set is not None:
        labels, start = torch.from_numpy(init_set.labels), init_set.tensor()
    else:
        dataset.check_per_class(per_class)
        labels = balanced_labels(dataset.num_classes, per_class)
        rng = np.random.default_rng(options.seed)
        index = np.concatenate([rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)
                                for c in range(dataset.num_classes)])
        start = dataset.tensor(index)
    logits = torch.logit(start.clamp(0.02, 0.98))
    teacher = Teacher(logits, torch.sigmoid, labels, build_extractor(extractor, input_size), features, dataset.labels, options)
    curve = teacher.run(curve_path, progress)
    params = {**options_record(options), "per_class": int(np.bincount(labels.numpy()).max()), "extractor": extractor,
              "input_size": input_size, "init": "teaching set" if init_set is not None else "real images drawn with the seed"}
    return generated_teaching_set(teacher, dataset, f"pixels-{options.student}", params, None), curve
