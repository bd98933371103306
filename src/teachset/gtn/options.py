"""The options of a GTN (or control) meta-training run, each with its help and its limits, and the
checks that need the data (its image size and classes) as well as the options."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import OptionError, TeachsetError
from ..options import check_fields, option
from .learners import LearnerSpec

SOURCES = ("gtn", "real", "distill")


@dataclass
class GTNOptions:
    """Everything that defines a GTN (or control) meta-training run; defaults in one visible place."""

    source: str = option("gtn", "what the learners are trained on: gtn (a generator), or a control: real (random real "
                         "samples) or distill (dataset distillation: learned pixels, same budget)", choices=SOURCES)
    inner_steps: int = option(32, "SGD steps of every learner", minimum=1)
    batch_size: int = option(64, "generated images per inner step (at least the number of classes)", minimum=1)
    outer_steps: int = option(200, "meta-training steps (the budget; a time limit may end it sooner)", minimum=1)
    minutes: float | None = option(None, "stop after this many minutes even if steps remain (the GAN warm-up counts)",
                                   above=0)
    learner: str = option("mlp", "the learners' architecture: mlp or conv (slower on a CPU)", choices=("mlp", "conv"))
    learner_widths: tuple[int, ...] = option((128,), "hidden units per layer (mlp) or channels per conv layer (conv)")
    sample_architectures: bool = option(False, "meta-train on a learner drawn from the architecture search space every "
                                        "outer step (a proxy for architecture search); the learner options then only set "
                                        "the learners scored at the end")
    weight_norm: bool = option(True, "weight-normalised learner layers (off: plain layers)")
    curriculum: str = option("learned", "the generator's noise: learned (one learned batch per inner step, in order), "
                             "shuffled (learned batches, order permuted every outer step) or none (fresh noise)",
                             choices=("learned", "shuffled", "none"))
    labels: str = option("conditional", "conditional generator (fixed labels) or generated soft labels",
                         choices=("conditional", "soft"))
    generator: str = option("mlp", "the generator's architecture: mlp, or conv (the paper's; image size a multiple "
                            "of 4, slower on a CPU)", choices=("mlp", "conv"))
    generator_width: int = option(32, "the generator's width (channels of its conv layers; 8x that in its hidden layer)",
                                  minimum=1)
    noise_dim: int = option(32, "size of the generator's noise input", minimum=1)
    gan_weight: float = option(0.0, "weight of a GAN realism loss in the meta-loss (0: off)", minimum=0)
    gan_warmup: int = option(0, "steps of plain conditional-GAN training before meta-training, so that it starts from "
                             "realistic images (needs a GAN weight above 0)", minimum=0)
    inner_lr: float = option(0.05, "initial inner learning rate (learned)", above=0)
    inner_momentum: float = option(0.5, "initial inner momentum, between 0 and 1 (learned)", above=0)
    outer_lr: float = option(1e-3, "Adam learning rate of the generator and curriculum", minimum=0)
    outer_schedule: str = option("cosine", "cosine: the outer learning rates decay to 0 over the outer steps, which keeps "
                                 "long runs stable; or constant", choices=("cosine", "constant"))
    hyper_lr: float = option(1e-2, "Adam learning rate of the log inner learning rate and the momentum logit", minimum=0)
    pixel_lr: float = option(1e-2, "Adam learning rate of the distilled pixels (the distill source)", minimum=0)
    meta_batch: int = option(256, "real images per meta-loss", minimum=1)
    grad_clip: float = option(5.0, "clip the meta-gradient to this norm", above=0)
    checkpointing: bool = option(False, "recompute inner steps in the backward pass (less memory, more time)")
    eval_every: int = option(50, "test few-step accuracy every this many outer steps (0: never)", minimum=0)
    eval_learners: int = option(4, "fresh learners scored at each test", minimum=1)
    seed: int = option(0, "seed of the teacher's initialisation, the learners, the holdout split and the export",
                       minimum=0)

    def __post_init__(self):
        self.learner_widths = tuple(self.learner_widths)
        check_fields(self)
        if any(w < 1 for w in self.learner_widths):
            raise OptionError("learner_widths", f"{{option}} must all be at least 1; got {list(self.learner_widths)}")
        if self.inner_momentum >= 1:
            raise OptionError("inner_momentum", f"{{option}} must be below 1; got {self.inner_momentum}")
        if self.gan_weight > 0 and self.source != "gtn":
            raise OptionError("gan_weight", f"{{option}} needs a generator to make realistic; use it with source 'gtn', "
                                            f"not '{self.source}'")
        if self.gan_warmup > 0 and not self.gan_weight > 0:
            raise OptionError("gan_warmup", "{option} trains the generator against the discriminator of the GAN realism "
                                            "loss; give that loss a weight above 0 too")

    @property
    def learner_spec(self) -> LearnerSpec:
        return LearnerSpec(self.learner, self.learner_widths, weight_norm=self.weight_norm)

    def to_json(self) -> dict:
        return asdict(self)


def check_data(options: GTNOptions, image_size: int, num_classes: int, class_counts: dict[str, int] | None = None) -> None:
    """Raise a one-line error for options that cannot work on this data: the conv generator's image
    size, a batch too small to hold every class, and (given the class counts, when a share of each
    class is held out for testing) a class with a single image."""
    if options.source == "gtn" and options.generator == "conv" and image_size % 4:
        raise OptionError("generator", f"the conv generator makes images whose size is a multiple of 4, not {image_size}; "
                                       f"load the images at e.g. {image_size // 4 * 4 or 8} px, or set {{option}} to 'mlp'")
    if options.batch_size < num_classes:
        raise OptionError("batch_size", f"{{option}} {options.batch_size} is smaller than the {num_classes} classes; use "
                                        f"at least {num_classes} so that every batch holds every class")
    single = [name for name, count in (class_counts or {}).items() if count < 2]
    if single:
        raise TeachsetError(f"class(es) {single} have a single image; GTN needs at least 2 per class (one to learn from, "
                            "one to test on)")
