"""A generator at twice the size of a trained one: its image upsampled, with the detail a small
learned stage adds (a cascade, as in cascaded diffusion models, Ho et al. 2021).

    base = load_generator("teachset:elpv-64")
    model = Upsampled(base)           # 128 px images from the base's codes; train its stage only

The code space, the class prior (as the base fitted it), the realism penalty and the encoder are
the base's (the encoder sees the image shrunk to the base's size), so whatever reads codes (the latent teacher, inversion)
works unchanged. The stage works on the base's image, all at the base's size: 3x3 convs with
SiLU and no normalisation (as in EDSR, Lim et al. 2017), the last making four sub-pixels per
pixel (a pixel shuffle, Shi et al. 2016; convs at the full size or group norm cost 2-3x the time
on a CPU). Its output is added to the logits of the bilinearly upsampled image, so an untrained
stage (its last layer is zero) is plain bilinear upsampling.
Training it (`teachset generator train --base`) reconstructs real images at the full size from the
base's reconstruction of them: the stage learns the base's own output, not clean downsamples.
A 128 px recipe this way costs a fraction of training at 128 px from scratch (docs/results.md).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Generator

LOGIT_EPS = 1e-3  # keeps the logits of saturated pixels finite
DEPTH = 4  # 3x3 convs at the base's size before the last one, which makes the 2x2 sub-pixels of each pixel


class Upsampled(Generator):
    kind = "upsampled"

    def __init__(self, base: Generator, width: int = 32):
        """`base`: the generator at half the size (frozen); a checkpoint records its kind and config
        beside this one's and rebuilds it first."""
        super().__init__()
        self.base = base.freeze()
        self.width = width
        self.image_size = base.image_size * 2
        self.channels, self.latent_dim, self.num_classes, self.class_names = base.channels, base.latent_dim, base.num_classes, base.class_names
        layers, cin = [], self.channels
        for _ in range(DEPTH):
            layers += [nn.Conv2d(cin, width, 3, 1, 1), nn.SiLU()]
            cin = width
        self.stage = nn.Sequential(*layers, nn.Conv2d(width, 4 * self.channels, 3, 1, 1), nn.PixelShuffle(2))
        self.zero_last()

    def zero_last(self) -> None:
        """The stage's last layer to zero: bilinear upsampling until it trains (after any re-initialisation)."""
        nn.init.zeros_(self.stage[-2].weight)
        nn.init.zeros_(self.stage[-2].bias)

    def config(self) -> dict:
        return {"width": self.width, "base_kind": self.base.kind, "base_config": self.base.config()}

    def refine(self, low: torch.Tensor) -> torch.Tensor:
        """Base-size images in [0, 1] -> full-size images in [0, 1]."""
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(torch.logit(up, LOGIT_EPS) + self.stage(low))

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.refine(self.base.generate(z, y))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.base.encode(F.interpolate(images, size=self.base.image_size, mode="area"))

    def sample_latents(self, y, generator=None):
        return self.base.sample_latents(y, generator)

    def prior_nll(self, z, y):
        return self.base.prior_nll(z, y)

    def whiten(self, z, y):
        return self.base.whiten(z, y)

    def unwhiten(self, w, y):
        return self.base.unwhiten(w, y)

