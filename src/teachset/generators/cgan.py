"""A conditional GAN generator from scratch (the option the feasibility measurements argue
against on a CPU, kept for users with more compute): z ~ N(0, I) and a learned class embedding
through the same decoder as the autoencoder. Trained by `teachset generator train --model cgan`
(hinge loss, a class-conditioned patch discriminator, DiffAugment, EMA)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import TeachsetError
from .autoencoder import ConvGenerator
from .blocks import decoder_layers


class ConditionalGAN(ConvGenerator):
    kind = "cgan"

    def __init__(self, image_size: int = 64, channels: int = 1, latent_dim: int = 128, width: int = 16,
                 max_width: int = 256, num_classes: int = 2, class_names: list[str] | None = None):
        super().__init__(image_size, channels, latent_dim, width, max_width, num_classes, class_names)
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, self.widths[-1] * 16)
        self.decoder = decoder_layers(self.widths, channels)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise TeachsetError("the conditional GAN needs the labels: generate(z, y)")
        top = self.project(torch.cat([z, self.embed(y)], dim=1)).view(len(z), -1, 4, 4)
        return torch.sigmoid(self.decoder(top))
