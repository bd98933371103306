"""Parameter initialisation from a seeded generator instead of torch's global random state."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def seeded_init(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear, convolution and Embedding in `module` (in registration order) as
    PyTorch's own `reset_parameters` would, but drawing from `generator`: the same values as
    constructing the module right after seeding torch's global generator with s, when `generator`
    is seeded with s and the module draws nothing else, without touching the global state."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, generator=generator)
    return module
