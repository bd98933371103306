"""What a generator run is: its options (TrainOptions), their checks against a dataset, and the
untrained model they describe (an autoencoder, a conditional GAN, or a 2x stage on a trained
generator). train.py trains it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ImageDataset
from ..errors import OptionError, TeachsetError
from ..options import check_fields, option
from ..seeded import seeded_init
from .autoencoder import Autoencoder, check_code_grid
from .base import Generator
from .cgan import ConditionalGAN
from .checkpoint import load_generator
from .upsample import Upsampled

FLIPS = ("none", "horizontal", "vertical", "both")
MIN_IMAGES_PER_CLASS = 10
MODELS = ("autoencoder", "cgan")
DEFAULT_MINUTES = 30.0


@dataclass
class TrainOptions:
    """How a generator trains. The budget is `minutes` and/or `steps`, whichever ends first (30
    minutes when neither is given). The autoencoder's options do not apply to the cgan."""

    model: str = option("autoencoder", "an autoencoder with a class prior over its codes (what trains on a CPU) or a "
                        "conditional GAN from scratch", choices=MODELS)
    minutes: float | None = option(None, f"training-time budget in minutes ({DEFAULT_MINUTES:g} when no budget is given)", above=0)
    steps: int | None = option(None, "step budget (whichever budget ends first)", minimum=1)
    latent_dim: int = option(256, "numbers in a code (the default: 4 channels on the 8 x 8 code grid)", minimum=1)
    code_grid: int = option(8, "autoencoder: the code is a G x G grid of latent-size / G^2 channels; 0: a vector, "
                            "from a linear layer at 4 x 4", minimum=0)
    prior_bandwidth: float = option(0.15, "autoencoder: noise added to a training code to sample, in class standard "
                                    "deviations (0: samples are reconstructions of training images)", minimum=0)
    width: int = option(16, "channels of the highest-resolution block (doubles per level)", minimum=4)
    batch_size: int = option(32, "images per step", minimum=1)
    lr: float = option(1e-3, "the generator's Adam learning rate (where the schedule starts)", above=0)
    lr_schedule: str = option("cosine", "cosine: the learning rates fall to 0 over the budget (extending a run's budget "
                              "stretches it); constant: they stay", choices=("cosine", "constant"))
    adversarial_weight: float = option(0.0, "autoencoder: weight of a patch discriminator's hinge loss (0: reconstruction only)",
                                       minimum=0)
    adversarial_start: float = option(0.4, "fraction of the budget before the adversarial term starts", minimum=0)
    base: str | None = option(None, "a trained generator at half the dataset's size (a checkpoint folder or teachset:NAME): "
                              "train only a 2x upsampling stage on it, keeping its codes, prior and encoder (the "
                              "autoencoder's other options do not apply)")
    flip: str = option("none", "random flips, only where they keep the class: horizontal (most photographs), vertical, "
                       "both (solar cells, cells under a microscope), or none", choices=FLIPS)
    seed: int = option(0, "seed of the weights and the batches", minimum=0)
    sample_every: int = option(500, "write a sample grid every this many steps", minimum=1)
    checkpoint_every: int = option(1000, "write the checkpoint and resume.pt every this many steps", minimum=1)
    checkpoint_minutes: float = option(5.0, "and every this many minutes of training, so that a kill loses little", above=0)
    lpips_weight: float = option(1.0, "weight of LPIPS beside L1 in the reconstruction loss", minimum=0, flag=False)
    disc_lr: float = option(2e-4, "the discriminator's Adam learning rate", above=0, flag=False)
    ema: float = option(0.999, "decay of the moving average of the weights that the checkpoint holds", minimum=0, flag=False)

    def __post_init__(self):
        check_fields(self)
        if self.minutes is None and self.steps is None:
            self.minutes = DEFAULT_MINUTES
        if self.adversarial_start > 1:
            raise OptionError("adversarial_start", f"{{option}} is a fraction of the budget, from 0 to 1; got {self.adversarial_start}")
        if self.ema >= 1:
            raise OptionError("ema", f"{{option}} is a fraction below 1; got {self.ema}")
        if self.model == "autoencoder":
            check_code_grid(self.latent_dim, self.code_grid)

    @classmethod
    def recorded(cls, options: dict) -> "TrainOptions":
        """The options a run recorded (options.json, a checkpoint's meta), with what runs from before an
        option existed had instead of today's default; keys this version does not know are left out."""
        legacy = {"code_grid": 0, "prior_bandwidth": 0.3}
        known = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("flip"), bool):  # runs from before the flips were named
            known["flip"] = "both" if known["flip"] else "none"
        return cls(**{**legacy, **known})


def check_trainable(dataset: ImageDataset) -> None:
    if dataset.image_size & (dataset.image_size - 1) or dataset.image_size < 32:
        raise TeachsetError(f"the generator trains at power-of-two sizes of 32 px or more (32, 64, 128); load the dataset "
                            f"at 64 px, not {dataset.image_size}")
    small = {k: v for k, v in dataset.class_counts().items() if v < MIN_IMAGES_PER_CLASS}
    if small:
        raise TeachsetError(f"class(es) {small} have fewer than {MIN_IMAGES_PER_CLASS} images: too few to train a generator on; "
                            "add images or use a selection method")


def load_base(options: TrainOptions, dataset: ImageDataset) -> Generator:
    """The generator an upsampling stage trains on, checked against the dataset: half its size, its
    channels and classes, an encoder, and held-out images that the dataset holds."""
    base = load_generator(options.base)
    wanted = (dataset.image_size // 2, dataset.channels, list(dataset.class_names))
    if (base.image_size, base.channels, list(base.class_names)) != wanted:
        raise OptionError("base", f"the base generator makes {base.channels}x{base.image_size}px images of classes "
                                  f"{list(base.class_names)}; {{option}} must make {wanted[1]}x{wanted[0]}px images of "
                                  f"{wanted[2]} (half the size of the dataset loaded at {dataset.image_size} px)")
    try:
        base.encode(torch.zeros(1, base.channels, base.image_size, base.image_size))
    except TeachsetError:
        raise OptionError("base", f"the {base.kind} generator has no encoder, which the stage trains through; "
                                  "{option} takes an autoencoder") from None
    held = getattr(base, "meta", {}).get("held_out_ids") or []
    if not set(held) <= set(dataset.ids):
        raise OptionError("base", "the base generator's held-out images are not all in this dataset: {option} must have "
                                  "been trained on the same images (at half the size)")
    return base


def check_options(dataset: ImageDataset, options: TrainOptions) -> None:
    """What can be wrong with these options on this dataset (checked before a run folder is made)."""
    check_trainable(dataset)
    if options.base:
        load_base(options, dataset)
    elif options.model == "autoencoder":
        check_code_grid(options.latent_dim, options.code_grid, dataset.image_size)


def build_model(options: TrainOptions, dataset: ImageDataset, init: torch.Generator) -> Generator:
    """The untrained generator these options describe, for this dataset's images and classes, its
    weights drawn from `init` (an upsampling stage's only: the base keeps its trained ones)."""
    if options.base:
        model = Upsampled(load_base(options, dataset), 2 * options.width)
        seeded_init(model.stage, init)
        model.zero_last()
        return model
    if options.model == "autoencoder":
        model = Autoencoder(dataset.image_size, dataset.channels, options.latent_dim, options.width, num_classes=dataset.num_classes,
                            class_names=dataset.class_names, prior_bandwidth=options.prior_bandwidth, code_grid=options.code_grid)
    else:
        model = ConditionalGAN(dataset.image_size, dataset.channels, options.latent_dim, options.width,
                               num_classes=dataset.num_classes, class_names=dataset.class_names)
    return seeded_init(model, init)
