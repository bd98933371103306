"""latent: machine teaching in a generator's latent space (Doron et al. 2021).

The teacher holds b latent codes (per_class of each class, labels fixed) of a frozen generator
and optimises them so that the generated images teach the LC or NN student the dataset (see
teacher.py). Codes start from the generator's class prior, or from a teaching set's codes (a set
written by `teachset generator invert`; a set of real images is inverted first), so the teacher
can start from the best selected set and improve on it. A prior penalty and truncation keep the
codes where the generator makes realistic images; a diversity term keeps one class's examples apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import ImageDataset
from ..errors import TeachsetError
from ..features import build_extractor
from ..generators import Generator
from .teacher import Teacher, TeacherOptions, balanced_labels, generated_teaching_set, options_record


def check_generator_fits(generator: Generator, dataset: ImageDataset) -> None:
    if (generator.image_size, generator.channels) != (dataset.image_size, dataset.channels):
        raise TeachsetError(
            f"the generator makes {generator.channels}-channel {generator.image_size} px images but the dataset has "
            f"{dataset.channels}-channel {dataset.image_size} px ones; load the dataset with --size {generator.image_size} "
            "or use a generator trained at this size")
    if generator.num_classes != dataset.num_classes:
        raise TeachsetError(f"the generator knows {generator.num_classes} classes, the dataset has {dataset.num_classes}")


def initial_codes(generator: Generator, labels: torch.Tensor, seed: int, init_set=None, invert_steps: int = 200) -> torch.Tensor:
    if init_set is None:
        return generator.sample_latents(labels, torch.Generator().manual_seed(seed))
    if init_set.latents is not None:
        return torch.from_numpy(init_set.latents)
    from ..generators.invert import invert

    z, _ = invert(generator, init_set.tensor(), labels, steps=invert_steps)
    return z


def teach_latent(generator: Generator, dataset: ImageDataset, features: np.ndarray, options: TeacherOptions,
                 per_class: int = 5, extractor: str = "mobilenet_v2", input_size: int | None = None, init_set=None,
                 generator_name: str = "", curve_path: Path | None = None, progress: bool = True):
    """(TeachingSet with the final codes, the training curve)."""
    check_generator_fits(generator, dataset)
    generator.freeze()
    if init_set is not None:
        if init_set.dataset.get("fingerprint") != dataset.fingerprint:
            raise TeachsetError("the initial teaching set was made from another dataset; start from a set of this dataset")
        labels = torch.from_numpy(init_set.labels)
    else:
        dataset.check_per_class(per_class)
        labels = balanced_labels(dataset.num_classes, per_class)
    z0 = initial_codes(generator, labels, options.seed, init_set)
    penalty = None
    if options.prior_weight:
        penalty = lambda z: options.prior_weight * generator.prior_nll(z, labels).mean() / generator.latent_dim
    project = (lambda z: generator.truncate(z, labels, options.truncation)) if options.truncation else None
    teacher = Teacher(z0, lambda z: generator.generate(z, labels), labels, build_extractor(extractor, input_size),
                      features, dataset.labels, options, penalty=penalty, project=project)
    curve = teacher.run(curve_path, progress)
    params = {**options_record(options), "per_class": int(np.bincount(labels.numpy()).max()), "extractor": extractor,
              "input_size": input_size, "generator": generator_name,
              "init": f"teaching set {init_set.path or init_set.method}" if init_set is not None else "prior samples"}
    ts = generated_teaching_set(teacher, dataset, f"latent-{options.student}", params, teacher.params.detach().numpy().astype(np.float32))
    return ts, curve
