"""latent: machine teaching in a generator's latent space (Doron et al. 2021).

The teacher holds b latent codes (per_class of each class, labels fixed) of a frozen generator
and optimises them so that the generated images teach the LC or NN student the dataset (see
teacher.py). Codes start from the generator's class prior, or from a teaching set's codes (a set
written by `teachset generator invert`; a set of real images is inverted first), so the teacher
can start from the best selected set and improve on it. A prior penalty and truncation keep the
codes where the generator makes realistic images; a diversity term keeps one class's examples apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import OptionError, TeachsetError
from ..generators import Generator, load_generator
from ..options import option
from ..teaching_set import TeachingSet
from .base import Method, TeachingData, make_method, method_names, register
from .teacher import Teacher, TeacherOptions, balanced_labels, load_start, teaching_spaces


def check_generator_fits(generator: Generator, data: TeachingData) -> None:
    dataset = data.dataset
    if (generator.image_size, generator.channels) != (dataset.image_size, dataset.channels):
        raise TeachsetError(
            f"the generator makes {generator.channels}-channel {generator.image_size} px images but the dataset has "
            f"{dataset.channels}-channel {dataset.image_size} px ones; load the dataset at {generator.image_size} px "
            "or use a generator trained at this size")
    if generator.num_classes != dataset.num_classes:
        raise TeachsetError(f"the generator knows {generator.num_classes} classes, the dataset has {dataset.num_classes}")
    trained_on, teaching = getattr(generator, "meta", {}).get("dataset") or {}, dataset.record()
    if trained_on.get("fingerprint") == teaching["fingerprint"] and trained_on.get("split") and teaching.get("split"):
        keys = ("protocol", "test_fraction", "split_seed")
        if any(trained_on["split"].get(k) != teaching["split"].get(k) for k in keys):
            raise TeachsetError("the generator was trained on another train split of this dataset, so it has seen some of the "
                                f"test images ({ {k: trained_on['split'].get(k) for k in keys} }); teach with the split it "
                                "was trained on, or train a generator on this one")


def initial_codes(generator: Generator, labels: torch.Tensor, seed: int, start: TeachingSet | None = None,
                  invert_steps: int = 200) -> torch.Tensor:
    """Prior samples drawn with `seed`, or the codes of the teaching set `start` (inverted if it has none)."""
    if start is None:
        return generator.sample_latents(labels, torch.Generator().manual_seed(seed))
    if start.latents is not None:
        return torch.from_numpy(start.latents)
    from ..generators.invert import invert

    z, _ = invert(generator, start.tensor(), labels, steps=invert_steps, measure=False)
    return z


@register
@dataclass
class LatentTeacher(TeacherOptions, Method):
    name = "latent"
    summary = "machine teaching in a generator's latent space (Doron et al.)"
    kind = "generated"
    generator: str | Generator = option("", "a generator checkpoint folder, a bundled one (teachset:elpv-64) or a "
                                            "TorchScript file", flag=False)
    start: str = option("herding", "where the codes start: samples of the generator's class prior, or the real images "
                        "a selection method picks (e.g. herding), inverted")
    init: str | None = option(None, "start from this teaching set (its latent codes, or its images inverted) "
                                    "instead", flag=False)

    def __post_init__(self):
        super().__post_init__()
        if self.start != "prior" and self.start not in method_names("selection"):
            raise OptionError("start", f"{{option}} must be prior or a selection method ({', '.join(method_names('selection'))}); "
                                       f"got {self.start!r}")

    def load_generator(self) -> Generator:
        if isinstance(self.generator, Generator):
            return self.generator
        if not self.generator:
            raise OptionError("generator", "the latent teacher needs a {option}: a checkpoint folder, a bundled "
                                           "generator (teachset:elpv-64) or a TorchScript file")
        return load_generator(self.generator)

    def make(self, data: TeachingData, per_class: int, seed: int = 0, progress: bool = False) -> TeachingSet:
        return self.make_many(data, per_class, [seed], progress)[0]

    def make_many(self, data: TeachingData, per_class: int, seeds: list[int], progress: bool = False) -> list[TeachingSet]:
        """One teaching set per seed, taught together: their images share each pass through the networks."""
        generator = self.load_generator().freeze()  # gradients flow to the codes only
        check_generator_fits(generator, data)
        start = load_start(self.init, data)
        starts = [start if start is not None or self.start == "prior" else make_method(self.start).make(data, per_class, seed)
                  for seed in seeds]
        if starts[0] is None:
            data.dataset.check_per_class(per_class)
            labels = balanced_labels(data.dataset.num_classes, per_class)
        else:
            labels = torch.from_numpy(starts[0].labels)
        z0 = torch.cat([initial_codes(generator, labels, seed, start) for seed, start in zip(seeds, starts)])
        every = labels.repeat(len(seeds))
        start_whitened = generator.whiten(z0, every).detach()

        def penalty(z: torch.Tensor) -> torch.Tensor:  # one value per code
            total = z.new_zeros(len(z))
            if self.prior_weight:
                total = total + self.prior_weight * generator.prior_nll(z, every) / generator.latent_dim
            if self.anchor_weight:
                total = total + self.anchor_weight * (generator.whiten(z, every) - start_whitened).pow(2).sum(1) / generator.latent_dim
            return total

        project = (lambda z: generator.truncate(z, every, self.truncation)) if self.truncation else None  # noqa: E731
        networks, features = teaching_spaces(self, data)
        teacher = Teacher(self, lambda z: generator.generate(z, every), labels, networks, penalty, project, list(seeds))
        teacher.fit(z0, features, data.dataset.labels, progress)
        params, b = self.record(data, int(np.bincount(labels.numpy()).max())), len(labels)
        images, codes = teacher.images(), teacher.params_.detach()
        return [TeachingSet.generated(images[k * b : (k + 1) * b], labels, data.dataset.class_names, data.dataset.record(),
                                      f"latent-{self.student}", params, seed, latents=codes[k * b : (k + 1) * b],
                                      curve=teacher.curves_[k]) for k, seed in enumerate(seeds)]
