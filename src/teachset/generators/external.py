"""External generators: a TorchScript module `z -> image` or `(z, y) -> image`, for example a
StyleGAN2 trained on a GPU and exported with torch.jit.script / torch.jit.trace.

The latent size, classes and output range are declared, either as attributes of the module
(`latent_dim`, `num_classes`, `conditional`) or by the caller; a probe call checks the signature
and output shape before anything else runs. Latents are sampled from a standard normal. A
conditional module needs the labels in every call: generate(z, y).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import OptionError, TeachsetError
from .base import Generator


def _literal(text: str) -> str:
    """Text for an OptionError's message template, its braces kept as they are."""
    return text.replace("{", "{{").replace("}", "}}")


class TorchScriptGenerator(Generator):
    kind = "torchscript"

    def __init__(self, module: torch.jit.ScriptModule, latent_dim: int, num_classes: int, conditional: bool,
                 output_range: tuple[float, float] = (0.0, 1.0), class_names: list[str] | None = None, source: str = ""):
        super().__init__()
        self.module, self.latent_dim, self.num_classes, self.conditional = module, latent_dim, num_classes, conditional
        self.output_range, self.source = output_range, source
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        probe = self._call(torch.zeros(2, latent_dim), torch.zeros(2, dtype=torch.long), check=True)
        if probe.ndim != 4 or probe.shape[0] != 2 or probe.shape[1] not in (1, 3) or probe.shape[2] != probe.shape[3]:
            raise TeachsetError(f"external generator '{source}' returned shape {tuple(probe.shape)} for 2 codes; "
                                "it must return square images (n, 1 or 3, S, S)")
        self.channels, self.image_size = probe.shape[1], probe.shape[2]

    def _call(self, z, y, check=False):
        try:
            return self.module(z, y) if self.conditional else self.module(z)
        except Exception as error:  # the module's own failure: report the signature the user declared
            if not check:
                raise
            form = "(z, y)" if self.conditional else "(z)"
            said = _literal(f"external generator '{self.source}' cannot be called as {form} with z of shape "
                            f"(2, {self.latent_dim}): {str(error).splitlines()[0][:200]}")
            raise OptionError("latent_dim", said + "; check {option} and whether the module is conditional") from None

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional and y is None:
            raise TeachsetError("this external generator is conditional: generate(z, y) needs the labels y")
        out = self._call(z, y)
        low, high = self.output_range
        return ((out - low) / (high - low)).clamp(0, 1)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes, "conditional": self.conditional,
                "output_range": list(self.output_range), "source": self.source}

    @classmethod
    def load(cls, path: str | Path, latent_dim: int | None = None, num_classes: int | None = None,
             conditional: bool | None = None, output_range: tuple[float, float] = (0.0, 1.0),
             class_names: list[str] | None = None) -> "TorchScriptGenerator":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # not TorchScript, truncated, or another format
            raise TeachsetError(f"'{path}' is not a TorchScript module ({str(error).splitlines()[0][:150]}); "
                                "export your generator with torch.jit.script or torch.jit.trace") from None
        latent_dim = latent_dim or getattr(module, "latent_dim", None)
        num_classes = num_classes or getattr(module, "num_classes", None)
        if conditional is None:
            conditional = bool(getattr(module, "conditional", False))
        for name, value in (("latent_dim", latent_dim), ("num_classes", num_classes)):
            if not value:
                raise OptionError(name, _literal(f"'{path}' does not declare {name}") + " (an attribute of the module); give {option}")
        module.eval()
        return cls(module, int(latent_dim), int(num_classes), conditional, output_range, class_names, str(path)).freeze()
