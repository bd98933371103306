"""GTN learners: small conv or MLP classifiers written as functions of explicit weight tensors.

A learner is a `LearnerSpec` (its architecture) plus a flat list of tensors (its weights). Keeping
the weights outside any nn.Module lets the inner loop replace them with `w - lr * v` tensors that
stay on the autograd graph, so the meta-loss can be differentiated through the whole unrolled
training (Such et al. 2020, Fig. 1a).

Weight normalisation (Salimans & Kingma 2016), the default: every layer's weight is
w = g * v / ||v|| with the norm taken per output unit; the learner's parameters are (v, g, b).
Plain layers hold w and b directly. Both start as the same function (g is set to ||v||).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NEGATIVE_SLOPE = 0.1


@dataclass(frozen=True)
class LearnerSpec:
    """A learner's architecture. conv: `widths` conv layers (k x k, leaky ReLU, 2x2 max-pool when the
    map is at least 2 px), then an optional hidden fully-connected layer, then the classifier.
    mlp: `widths` hidden fully-connected layers, then the classifier."""

    kind: str = "conv"
    widths: tuple[int, ...] = (16, 32)
    kernel: int = 3
    hidden: int = 0
    weight_norm: bool = True

    def __post_init__(self):
        assert self.kind in ("conv", "mlp"), self.kind
        assert self.kernel % 2 == 1 and all(w > 0 for w in self.widths)

    def describe(self) -> str:
        body = "-".join(str(w) for w in self.widths) or "linear"
        extra = f" fc{self.hidden}" if self.hidden else ""
        return f"{self.kind}[{body}{extra}{f' k{self.kernel}' if self.kind == 'conv' else ''}]{'' if self.weight_norm else ' plain'}"


def _layer_shapes(spec: LearnerSpec, channels: int, image_size: int, num_classes: int) -> list[tuple[str, tuple]]:
    """(kind, weight shape) per layer in order: 'conv' or 'fc'."""
    layers = []
    if spec.kind == "conv":
        c, s = channels, image_size
        for width in spec.widths:
            layers.append(("conv", (width, c, spec.kernel, spec.kernel)))
            c, s = width, (s // 2 if s >= 2 else s)
        features = c * s * s
    else:
        features = channels * image_size * image_size
        for width in spec.widths:
            layers.append(("fc", (width, features)))
            features = width
    if spec.hidden:
        layers.append(("fc", (spec.hidden, features)))
        features = spec.hidden
    layers.append(("fc", (num_classes, features)))
    return layers


def weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """w = g * v / ||v||, norm over every dim but the first (one norm per output unit)."""
    norm = v.flatten(1).norm(dim=1).clamp_min(1e-12)
    return v * (g / norm).view(-1, *([1] * (v.dim() - 1)))


def init_params(spec: LearnerSpec, channels: int, image_size: int, num_classes: int,
                generator: torch.Generator) -> list[torch.Tensor]:
    """Fresh weights (He-normal, zero bias), leaves with requires_grad. Weight-norm layers hold
    (v, g, b) with g = ||v||; plain layers hold (w, b)."""
    params = []
    for _, shape in _layer_shapes(spec, channels, image_size, num_classes):
        fan_in = math.prod(shape[1:])
        v = torch.randn(shape, generator=generator) * math.sqrt(2.0 / (1 + NEGATIVE_SLOPE ** 2) / fan_in)
        if spec.weight_norm:
            params += [v, v.flatten(1).norm(dim=1), torch.zeros(shape[0])]
        else:
            params += [v, torch.zeros(shape[0])]
    return [p.requires_grad_() for p in params]


def num_params(spec: LearnerSpec, channels: int, image_size: int, num_classes: int) -> int:
    return sum(math.prod(s) + s[0] for _, s in _layer_shapes(spec, channels, image_size, num_classes))


def forward(spec: LearnerSpec, params: list[torch.Tensor], x: torch.Tensor, features: bool = False) -> torch.Tensor:
    """Logits (n, num_classes) of the learner with weights `params` on images x (n, C, H, W) in [0, 1];
    with `features`, the input of the classifier layer instead (n, its width)."""
    per_layer = 3 if spec.weight_norm else 2
    layers = _layer_shapes(spec, x.shape[1], x.shape[-1], params[-1].shape[0])
    assert len(params) == per_layer * len(layers), (len(params), len(layers))
    h = x * 2 - 1
    for i, (kind, _) in enumerate(layers):
        if features and i == len(layers) - 1:
            return h.flatten(1)
        group = params[i * per_layer : (i + 1) * per_layer]
        w = weight_norm(group[0], group[1]) if spec.weight_norm else group[0]
        b = group[-1]
        if kind == "conv":
            h = F.leaky_relu(F.conv2d(h, w, b, padding=spec.kernel // 2), NEGATIVE_SLOPE)
            if h.shape[-1] >= 2:
                h = F.max_pool2d(h, 2)
        else:
            h = F.linear(h.flatten(1), w, b)
            if i < len(layers) - 1:
                h = F.leaky_relu(h, NEGATIVE_SLOPE)
    return h


def search_space() -> list[LearnerSpec]:
    """The architecture-search proxy's space: 24 weight-normalised learners, 12 MLPs (1-3 hidden layers
    of 32/64/128/256 units) and 12 conv nets (1-2 conv layers, first width 4/8/16 doubling, kernel 3/5)."""
    mlps = [LearnerSpec("mlp", (w,) * depth) for depth in (1, 2, 3) for w in (32, 64, 128, 256)]
    convs = [LearnerSpec("conv", tuple(w * 2 ** i for i in range(depth)), kernel)
             for depth in (1, 2) for w in (4, 8, 16) for kernel in (3, 5)]
    return mlps + convs
