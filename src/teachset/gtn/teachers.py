"""What the learners are trained on, one batch per inner step: a teacher.

- `GTNTeacher`: a generator from noise (+ class) to images (Such et al. 2020), fed by a curriculum:
  'learned' (the noise of every inner step is a learned parameter, used in order), 'shuffled'
  (learned noise batches, their order permuted every outer step) or 'none' (fresh N(0, 1) noise).
  Labels: 'conditional' (the class is an input, the target is that class) or 'soft' (the generator
  also outputs a label distribution, "dark knowledge", used as the learner's soft target).
- `PixelTeacher`: dataset distillation (Wang et al. 2018), the learned pixels themselves, one batch
  per inner step, same budget.
- `RealTeacher`: random real training images, the control.

Every teacher holds the learned inner learning rate and momentum and answers, for inner step t,
`draw(t, rng)` (the random part: noise or real indices, drawn outside any recomputation) and
`make(t, key) -> (images in [0, 1], target)` (deterministic given the key); target is class indices
or probabilities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..seeded import seeded_init

SOFT_LABEL_PRIOR = 2.0  # logit added to the conditioning class of a soft label; the generator's head starts at zero


class InnerHyper(nn.Module):
    """Learned inner-loop learning rate (log-parametrised) and momentum (logit-parametrised)."""

    def __init__(self, lr: float, momentum: float):
        super().__init__()
        self.log_lr = nn.Parameter(torch.tensor(math.log(lr)))
        self.momentum_logit = nn.Parameter(torch.tensor(math.log(momentum / (1 - momentum))))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_lr.exp(), torch.sigmoid(self.momentum_logit)


def balanced_labels(batch_size: int, num_classes: int) -> torch.Tensor:
    """The fixed labels of every generated batch: 0, 1, ..., C-1, 0, 1, ..."""
    return torch.arange(batch_size) % num_classes


class Generator(nn.Module):
    """noise (n, noise_dim) + class (n,) -> images (n, C, S, S) in [0, 1] (+ label logits when soft).

    'conv': two fully-connected layers, then two (upsample x2, 3x3 conv) blocks (S divisible by 4);
    'mlp': three fully-connected layers. Batch norm uses batch statistics only, so a batch's images
    are a deterministic function of its noise."""

    def __init__(self, noise_dim: int, num_classes: int, channels: int, image_size: int,
                 kind: str = "conv", width: int = 32, soft_labels: bool = False):
        super().__init__()
        self.num_classes, self.channels, self.image_size, self.kind = num_classes, channels, image_size, kind
        hidden = 8 * width
        self.fc = nn.Sequential(nn.Linear(noise_dim + num_classes, hidden), nn.BatchNorm1d(hidden, track_running_stats=False),
                                nn.LeakyReLU(0.1))
        if kind == "conv":
            assert image_size % 4 == 0, image_size
            self.base = image_size // 4
            self.to_map = nn.Sequential(nn.Linear(hidden, width * self.base ** 2),
                                        nn.BatchNorm1d(width * self.base ** 2, track_running_stats=False), nn.LeakyReLU(0.1))
            self.convs = nn.Sequential(
                nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width, track_running_stats=False),
                nn.LeakyReLU(0.1), nn.Upsample(scale_factor=2), nn.Conv2d(width, channels, 3, padding=1))
            self.width = width
        else:
            self.to_map = nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden, track_running_stats=False),
                                        nn.LeakyReLU(0.1), nn.Linear(hidden, channels * image_size ** 2))
        self.label_head = nn.Linear(hidden, num_classes) if soft_labels else None
        if self.label_head is not None:
            nn.init.zeros_(self.label_head.weight)
            nn.init.zeros_(self.label_head.bias)

    def initialise(self, generator: torch.Generator) -> "Generator":
        """PyTorch's default initialisation of every layer, drawn from `generator` (global RNG untouched),
        with the soft-label head back at zero."""
        seeded_init(self, generator)
        if self.label_head is not None:
            nn.init.zeros_(self.label_head.weight)
            nn.init.zeros_(self.label_head.bias)
        return self

    def forward(self, z: torch.Tensor, y: torch.Tensor):
        h = self.fc(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1))
        if self.kind == "conv":
            x = self.convs(self.to_map(h).view(-1, self.width, self.base, self.base))
        else:
            x = self.to_map(h).view(-1, self.channels, self.image_size, self.image_size)
        x = torch.sigmoid(x)
        if self.label_head is None:
            return x, None
        return x, self.label_head(h) + SOFT_LABEL_PRIOR * F.one_hot(y, self.num_classes).to(z.dtype)


class GTNTeacher(nn.Module):
    def __init__(self, generator: Generator, steps: int, batch_size: int, noise_dim: int, curriculum: str,
                 hyper: InnerHyper, init: torch.Generator):
        super().__init__()
        assert curriculum in ("learned", "shuffled", "none"), curriculum
        self.generator, self.hyper, self.curriculum = generator, hyper, curriculum
        self.steps, self.batch_size, self.noise_dim = steps, batch_size, noise_dim
        self.register_buffer("labels", balanced_labels(batch_size, generator.num_classes))
        self.noise = (nn.Parameter(torch.randn(steps, batch_size, noise_dim, generator=init))
                      if curriculum != "none" else None)

    def order(self, steps: int, rng: torch.Generator) -> list[int]:
        """Which noise batch each inner step uses; beyond the learned steps, the batches repeat."""
        if self.curriculum == "shuffled":
            return torch.randperm(self.steps, generator=rng).repeat(-(-steps // self.steps))[:steps].tolist()
        return [t % self.steps for t in range(steps)]

    def draw(self, t: int, rng: torch.Generator) -> torch.Tensor | None:
        return torch.randn(self.batch_size, self.noise_dim, generator=rng) if self.noise is None else None

    def make(self, t: int, key: torch.Tensor | None):
        x, label_logits = self.generator(self.noise[t] if key is None else key, self.labels)
        return x, (self.labels if label_logits is None else F.softmax(label_logits, 1))


class PixelTeacher(nn.Module):
    """Dataset distillation: steps x batch learned images (sigmoid of free logits), fixed balanced labels."""

    def __init__(self, steps: int, batch_size: int, num_classes: int, channels: int, image_size: int,
                 hyper: InnerHyper, init: torch.Generator):
        super().__init__()
        self.hyper, self.steps = hyper, steps
        self.register_buffer("labels", balanced_labels(batch_size, num_classes))
        self.pixels = nn.Parameter(0.5 * torch.randn(steps, batch_size, channels, image_size, image_size, generator=init))

    def order(self, steps: int, rng: torch.Generator) -> list[int]:
        return [t % self.steps for t in range(steps)]

    def draw(self, t: int, rng: torch.Generator) -> None:
        return None

    def make(self, t: int, key: None):
        return torch.sigmoid(self.pixels[t]), self.labels


class RealTeacher(nn.Module):
    """Random real training images (class-balanced batches drawn fresh every inner step)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, hyper: InnerHyper):
        super().__init__()
        self.hyper, self.batch_size = hyper, batch_size
        self.images, self.labels = images, labels
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(int(labels.max()) + 1)]

    def order(self, steps: int, rng: torch.Generator) -> list[int]:
        return list(range(steps))

    def draw(self, t: int, rng: torch.Generator) -> torch.Tensor:
        counts = torch.bincount(balanced_labels(self.batch_size, len(self.by_class)), minlength=len(self.by_class)).tolist()
        index = torch.cat([members[torch.randint(len(members), (k,), generator=rng)] for members, k in zip(self.by_class, counts)])
        return index

    def make(self, t: int, key: torch.Tensor):
        return self.images[key], self.labels[key]
