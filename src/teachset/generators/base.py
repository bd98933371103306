"""The Generator protocol: what a teacher needs from an image generator.

    latent_dim, num_classes, image_size, channels, class_names
    generate(z, y) -> images in [0, 1], (n, C, S, S), differentiable in z; y (the labels) may
                     be left out only for unconditional kinds, so callers always pass it
    encode(images) -> z                  where the model has an encoder (else TeachsetError)
    sample_latents(y, generator) -> z    codes of realistic images of classes y

The kinds (autoencoder.py, upsample.py, cgan.py, external.py) implement it; checkpoint.py saves and loads them;
recipe.py describes a training run, train.py runs it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import TeachsetError


class Generator(nn.Module):
    latent_dim: int
    num_classes: int
    image_size: int
    channels: int
    class_names: list[str]
    kind: str = "generator"

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images of codes z (n, latent_dim) of classes y (n,)."""
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise TeachsetError(f"the {self.kind} generator has no encoder; invert images by optimisation from sampled codes")

    def sample_latents(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes for labels y, drawn with a CPU `generator` (the same codes on any device), on y's device."""
        return torch.randn(len(y), self.latent_dim, generator=generator).to(y.device)

    def prior_nll(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-code squared distance to the prior in its whitened space (here: a standard normal)."""
        return z.pow(2).sum(1)

    def truncate(self, z: torch.Tensor, y: torch.Tensor, radius: float) -> torch.Tensor:
        """Pull codes back inside the prior's ball of radius `radius` * sqrt(latent_dim) (whitened)."""
        limit = radius * self.latent_dim**0.5
        norm = self.prior_nll(z, y).sqrt().clamp_min(1e-12)
        return self.unwhiten(self.whiten(z, y) * (limit / norm).clamp(max=1.0).unsqueeze(1), y)

    def whiten(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Codes in the prior's whitened space, where distances are in the class's standard deviations."""
        return z

    def unwhiten(self, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return w

    def freeze(self) -> "Generator":
        """No parameter gradients (the teacher differentiates with respect to z only)."""
        self.requires_grad_(False)
        self.eval()
        return self

    def config(self) -> dict:
        raise NotImplementedError
