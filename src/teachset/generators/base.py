"""The Generator protocol: what a teacher needs from an image generator.

    latent_dim, num_classes, image_size, channels, class_names
    generate(z, y=None) -> images in [0, 1], (n, C, S, S), differentiable in z
    encode(images) -> z                  where the model has an encoder (else TeachsetError)
    sample_latents(y, generator) -> z    codes of realistic images of classes y

Checkpoints are a folder: generator.safetensors (tensors only) + generator.json (kind, config,
dataset, the command that made it). No pickled code is ever loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..atomic import atomic_dir, read_format_json
from ..errors import TeachsetError

WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "generator.json"
FORMAT = "teachset.generator/1"


class Generator(nn.Module):
    latent_dim: int
    num_classes: int
    image_size: int
    channels: int
    class_names: list[str]
    kind: str = "generator"

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
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
        return self._from_whitened(self._to_whitened(z, y) * (limit / norm).clamp(max=1.0).unsqueeze(1), y)

    def _to_whitened(self, z, y):
        return z

    def _from_whitened(self, w, y):
        return w

    def freeze(self) -> "Generator":
        """No parameter gradients (the teacher differentiates with respect to z only)."""
        self.requires_grad_(False)
        self.eval()
        return self

    def config(self) -> dict:
        raise NotImplementedError


def save_generator(model: Generator, folder: str | Path, extra: dict | None = None, overwrite: bool = True) -> Path:
    """Write the checkpoint folder atomically."""
    folder = Path(folder)
    meta = {"format": FORMAT, "kind": model.kind, "config": model.config(), **(extra or {})}
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_meta(folder: Path) -> dict:
    return read_format_json(folder / CONFIG_FILE, FORMAT, f"'{folder}' is not a generator checkpoint: it has no {CONFIG_FILE}; "
                            "give a folder written by `teachset generator train`")


BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "generators"


def bundled_generators() -> list[str]:
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if BUNDLED_DIR.is_dir() else []


def load_generator(path: str | Path, **external_options) -> Generator:
    """A checkpoint folder written by teachset, a bundled one ("teachset:elpv-64"), or a TorchScript
    file (see generators/external.py)."""
    source = str(path)
    if source.startswith("teachset:"):
        name = source.split(":", 1)[1]
        if name not in bundled_generators():
            raise TeachsetError(f"no bundled generator '{name}'; bundled: {', '.join(bundled_generators()) or 'none'}")
        path = BUNDLED_DIR / name
    path = Path(path)
    if not path.exists():
        raise TeachsetError(f"generator '{path}' does not exist; train one with `teachset generator train DATASET`")
    if path.is_file():
        from .external import TorchScriptGenerator

        return TorchScriptGenerator.load(path, **external_options)
    meta = read_meta(path)
    from .autoencoder import Autoencoder
    from .cgan import ConditionalGAN

    kinds = {"autoencoder": Autoencoder, "cgan": ConditionalGAN}
    if meta["kind"] not in kinds:
        raise TeachsetError(f"generator kind '{meta['kind']}' in '{path}' is unknown to this teachset ({', '.join(kinds)})")
    model = kinds[meta["kind"]](**meta["config"])
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except Exception as error:  # missing, truncated or foreign file
        raise TeachsetError(f"cannot read '{path / WEIGHTS_FILE}' ({error}); the checkpoint is damaged, train or copy it again") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise TeachsetError(f"'{path}' does not match its own config ({str(error).splitlines()[0]}); the checkpoint is damaged") from None
    model.meta, model.source = meta, source
    return model.freeze()
