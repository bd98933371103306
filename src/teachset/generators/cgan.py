"""A conditional GAN generator from scratch (the option the feasibility measurements argue
against on a CPU, kept for users with more compute): z ~ N(0, I) and a learned class embedding
through the same decoder as the autoencoder. Trained by `teachset generator train --model cgan`
(hinge loss, a class-conditioned patch discriminator, DiffAugment, EMA)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import TeachsetError
from .autoencoder import decoder_layers, widths_for
from .base import Generator


class ConditionalGAN(Generator):
    kind = "cgan"

    def __init__(self, image_size: int = 64, channels: int = 1, latent_dim: int = 128, width: int = 16,
                 max_width: int = 256, num_classes: int = 2, class_names: list[str] | None = None):
        super().__init__()
        self.image_size, self.channels, self.latent_dim, self.width, self.max_width = image_size, channels, latent_dim, width, max_width
        self.num_classes = num_classes
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        widths = widths_for(image_size, width, max_width)
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, widths[-1] * 16)
        self.decoder = decoder_layers(widths, channels)

    def config(self) -> dict:
        return {"image_size": self.image_size, "channels": self.channels, "latent_dim": self.latent_dim, "width": self.width,
                "max_width": self.max_width, "num_classes": self.num_classes, "class_names": self.class_names}

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise TeachsetError("the conditional GAN needs the labels: generate(z, y)")
        top = self.project(torch.cat([z, self.embed(y)], dim=1)).view(len(z), -1, 4, 4)
        return torch.sigmoid(self.decoder(top))
