"""The building blocks every generator and discriminator here shares: conv blocks with group
norm, the upsampling decoder, a spectral-normalised patch discriminator, and DiffAugment."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import TeachsetError
from ..seeded import seeded_init


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that normalises channels-last tensors in the standard layout and hands them back
    channels-last: on a CPU, PyTorch's channels-last group-norm backward is slower than the two
    layout copies, while the convolutions are faster channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1), GroupNorm(min(8, cout // 4), cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, 1, 1), GroupNorm(min(8, cout // 4), cout), nn.SiLU(),
    )


def widths_for(image_size: int, width: int, max_width: int) -> list[int]:
    """Channels per level, highest resolution first; one level per factor of two down to 4x4."""
    if image_size < 8 or image_size & (image_size - 1):
        raise TeachsetError(f"generators need a power-of-two image size of at least 8, got {image_size}")
    levels = int(math.log2(image_size // 4))
    return [min(width * 2**i, max_width) for i in range(levels)]


def decoder_layers(widths: list[int], channels: int) -> nn.Sequential:
    """4x4 x widths[-1] -> channels x S x S (before the sigmoid): nearest upsampling + conv blocks."""
    up, cin = [], widths[-1]
    for w in reversed(widths):
        up += [nn.Upsample(scale_factor=2, mode="nearest"), conv_block(cin, w)]
        cin = w
    return nn.Sequential(*up, nn.Conv2d(cin, channels, 3, 1, 1))


class PatchDiscriminator(nn.Module):
    """Real-vs-generated logits per 8x8-ish patch; spectral-normalised convs. With num_classes > 0
    the class enters as one-hot planes beside the image (a conditional discriminator). Given a
    seeded `generator`, the weights and the spectral norm's power-iteration vectors are drawn
    from it (as PyTorch draws them), so that the discriminator depends on the seed alone."""

    def __init__(self, channels: int, width: int = 32, num_classes: int = 0, generator: torch.Generator | None = None):
        super().__init__()
        self.num_classes = num_classes
        convs = [nn.Conv2d(channels + num_classes, width, 4, 2, 1), nn.Conv2d(width, width * 2, 4, 2, 1),
                 nn.Conv2d(width * 2, width * 4, 4, 2, 1), nn.Conv2d(width * 4, 1, 3, 1, 1)]
        if generator is not None:
            seeded_init(nn.Sequential(*convs), generator)
        convs = [nn.utils.spectral_norm(conv) for conv in convs]
        if generator is not None:
            with torch.no_grad():
                for conv in convs:  # u and v as spectral_norm draws them: normalised standard normals
                    for name in ("weight_u", "weight_v"):
                        vector = getattr(conv, name)
                        vector.copy_(F.normalize(torch.randn(vector.shape, generator=generator), dim=0, eps=1e-12))
        layers = []
        for conv in convs:
            layers += [conv, nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, x, y=None):
        x = x * 2 - 1
        if self.num_classes:
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, planes], dim=1)
        return self.net(x)


def diff_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): random brightness and translation, differentiable in x."""
    n, _, h, w = x.shape
    x = x + (torch.rand(n, 1, 1, 1, generator=generator).to(x.device) - 0.5) * 0.4
    shift = max(1, h // 8)
    dx, dy = (torch.randint(-shift, shift + 1, (2,), generator=generator)).tolist()
    x = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    return x[:, :, shift + dy : shift + dy + h, shift + dx : shift + dx + w]
