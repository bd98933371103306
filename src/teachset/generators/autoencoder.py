"""An autoencoder generator that trains on a CPU.

Encoder: conv blocks halving the size; decoder: blocks that double it (nearest upsampling + two
3x3 convs, GroupNorm, SiLU), a last 3x3 conv and a sigmoid. One level per factor of two, so it
runs at 32, 64 and 128 px. The code z (latent_dim numbers) is one of two kinds:
- a grid (code_grid = G, training's default 8): the encoder stops at G x G and a 3x3 conv makes
  latent_dim / G^2 channels there; the decoder starts from them with a 3x3 conv and a block. Each
  part of the code describes one part of the image, so thin local detail such as a crack survives;
- a vector (code_grid = 0): the encoder goes down to 4x4 and a linear layer makes z; the decoder
  starts with a linear layer to 4x4.
The grid reconstructs better than the vector with fewer parameters (docs/results.md).

Its latent space covers the real images (every real image has a code: its encoding). The prior
to sample from (`sample_latents`) is a kernel density per class over the training codes: a random
training code of the class plus Gaussian noise shaped like the class's covariance and scaled by
`prior_bandwidth`; it samples more realistic images than a single Gaussian per class or a
Gaussian mixture. The bandwidth trades realism for novelty: 0 samples the training codes
themselves (reconstructions of training images), larger values move samples away from them.
Training sets 0.15; checkpoints record theirs.
The Gaussian per class stays the whitened space of the teacher's prior penalty and truncation (`prior_nll`, `truncate`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import OptionError, TeachsetError
from .base import Generator
from .blocks import conv_block, decoder_layers, widths_for


def check_code_grid(latent_dim: int, code_grid: int, image_size: int | None = None) -> None:
    """A code grid (0: a code vector) must be a power of two from 4 to half the image size (where
    known) that divides the latent size into whole channels per cell."""
    if not code_grid:
        return
    if code_grid & (code_grid - 1) or code_grid < 4 or (image_size is not None and code_grid >= image_size):
        limit = f"half the image size ({image_size} px)" if image_size is not None else "half the image size"
        raise OptionError("code_grid", f"a code grid of {code_grid} does not fit: {{option}} must be a power of two from 4 "
                                       f"to {limit}, or 0 for a code vector")
    if latent_dim % code_grid**2:
        raise OptionError("latent_dim", f"a code grid of {code_grid} does not fit the latent size {latent_dim}: {{option}} must "
                                        f"be whole channels per cell, a multiple of {code_grid} x {code_grid} = {code_grid**2} "
                                        f"(e.g. {4 * code_grid**2}: 4 channels)")


class ConvGenerator(Generator):
    """What the autoencoder and the conditional GAN share: their configuration and level widths."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int, max_width: int,
                 num_classes: int, class_names: list[str] | None):
        super().__init__()
        self.image_size, self.channels, self.latent_dim, self.width, self.max_width = image_size, channels, latent_dim, width, max_width
        self.num_classes = num_classes
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.widths = widths_for(image_size, width, max_width)

    def config(self) -> dict:
        return {"image_size": self.image_size, "channels": self.channels, "latent_dim": self.latent_dim, "width": self.width,
                "max_width": self.max_width, "num_classes": self.num_classes, "class_names": self.class_names}


class Autoencoder(ConvGenerator):
    kind = "autoencoder"

    def __init__(self, image_size: int = 64, channels: int = 1, latent_dim: int = 128, width: int = 32,
                 max_width: int = 256, num_classes: int = 2, class_names: list[str] | None = None,
                 prior_bandwidth: float = 0.3, code_grid: int = 0):
        super().__init__(image_size, channels, latent_dim, width, max_width, num_classes, class_names)
        self.prior_bandwidth, self.code_grid = prior_bandwidth, code_grid
        check_code_grid(latent_dim, code_grid, image_size)
        if code_grid:
            self.widths = self.widths[: int(math.log2(image_size // code_grid))]
        widths = self.widths
        top = widths[-1]
        down, cin = [nn.Conv2d(channels, widths[0], 3, 1, 1)], widths[0]
        for w in widths:
            down.append(conv_block(cin, w, stride=2))
            cin = w
        if code_grid:
            code_channels = latent_dim // code_grid**2
            self.encoder = nn.Sequential(*down, nn.Conv2d(top, code_channels, 3, 1, 1), nn.Flatten())
            self.project = nn.Sequential(nn.Unflatten(1, (code_channels, code_grid, code_grid)),
                                         nn.Conv2d(code_channels, top, 3, 1, 1), conv_block(top, top))
        else:
            self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(top * 16, latent_dim))
            self.project = nn.Linear(latent_dim, top * 16)
        self.decoder = decoder_layers(widths, channels)
        self.register_buffer("prior_mean", torch.zeros(num_classes, latent_dim))
        self.register_buffer("prior_chol", torch.eye(latent_dim).repeat(num_classes, 1, 1))
        self.register_buffer("prior_codes", torch.zeros(0, latent_dim))
        self.register_buffer("prior_code_labels", torch.zeros(0, dtype=torch.long))

    def config(self) -> dict:
        return super().config() | {"prior_bandwidth": self.prior_bandwidth, "code_grid": self.code_grid}

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        """Any number of prior codes (none in checkpoints older than the kernel-density prior); the hook each module
        of a load runs, so an autoencoder inside another generator (an upsampling stage's base) loads the same way."""
        state.setdefault(prefix + "prior_codes", self.prior_codes[:0])
        state.setdefault(prefix + "prior_code_labels", self.prior_code_labels[:0])
        codes, labels = state[prefix + "prior_codes"], state[prefix + "prior_code_labels"]
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim or labels.shape != codes.shape[:1]:
            raise RuntimeError(f"prior codes of shape {tuple(codes.shape)} (labels {tuple(labels.shape)}) for latent_dim {self.latent_dim}")
        device = self.prior_mean.device  # filled by the load, on the model's device
        self.prior_codes, self.prior_code_labels = codes.new_empty(codes.shape, device=device), labels.new_empty(labels.shape, device=device)
        super()._load_from_state_dict(state, prefix, *args, **kwargs)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[1:] == (self.channels, self.image_size, self.image_size), images.shape
        return self.encoder(images * 2 - 1)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.latent_dim, z.shape
        top = self.project(z)
        return torch.sigmoid(self.decoder(top if self.code_grid else top.view(len(z), -1, 4, 4)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.generate(self.encode(images))

    @torch.no_grad()
    def fit_prior(self, z: torch.Tensor, y: torch.Tensor, shrinkage: float = 0.05) -> None:
        """The prior over training codes z of classes y: the codes themselves (the kernel density's
        centres) and a Gaussian per class, its covariance shrunk towards its diagonal mean."""
        self.prior_codes, self.prior_code_labels = z.float().clone(), y.long().clone()
        for c in range(self.num_classes):
            zc = z[y == c].double()
            mean = zc.mean(0)
            cov = torch.cov(zc.T) if len(zc) > 1 else zc.new_zeros(self.latent_dim, self.latent_dim)
            target = torch.eye(self.latent_dim, dtype=zc.dtype, device=zc.device) * cov.diagonal().mean().clamp_min(1e-6)
            cov = (1 - shrinkage) * cov + shrinkage * target
            self.prior_mean[c] = mean.float()
            self.prior_chol[c] = torch.linalg.cholesky(cov).float()

    def sample_latents(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes drawn with a CPU `generator` (the same on any device), on the prior's device."""
        device = self.prior_mean.device
        y = y.to(device)
        noise = torch.randn(len(y), self.latent_dim, generator=generator).to(device)
        if not len(self.prior_codes):  # a checkpoint without codes: the class Gaussian
            return self.unwhiten(noise, y)
        centres = torch.empty(len(y), self.latent_dim, device=device)
        for c in y.unique().tolist():
            pool = self.prior_codes[self.prior_code_labels == c]
            if not len(pool):
                raise TeachsetError(f"the generator's prior has no training codes of class {c}")
            members = y == c
            centres[members] = pool[torch.randint(len(pool), (int(members.sum()),), generator=generator).to(device)]
        return centres + self.prior_bandwidth * torch.einsum("nij,nj->ni", self.prior_chol[y], noise)

    def whiten(self, z, y):
        diff = (z - self.prior_mean[y]).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.prior_chol[y], diff, upper=False).squeeze(-1)

    def unwhiten(self, w, y):
        return self.prior_mean[y] + torch.einsum("nij,nj->ni", self.prior_chol[y], w)

    def prior_nll(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-code squared Mahalanobis distance to its class's Gaussian (the teacher's realism penalty)."""
        return self.whiten(z, y).pow(2).sum(1)
