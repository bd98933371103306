"""Generator checkpoints: a folder of generator.safetensors (tensors only) and generator.json
(format, kind, config, and what the trainer records: dataset, held-out ids, options, command).
No pickled code is ever loaded. Also the bundled checkpoints ("teachset:elpv-64") and external
TorchScript files, so that `load_generator` opens every kind.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..atomic import atomic_dir, read_format_json
from ..errors import TeachsetError
from .autoencoder import Autoencoder
from .base import Generator
from .cgan import ConditionalGAN
from .external import TorchScriptGenerator
from .upsample import Upsampled

WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "generator.json"
FORMAT = "teachset.generator/1"
KINDS = {"autoencoder": Autoencoder, "cgan": ConditionalGAN, "upsampled": Upsampled}
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "generators"


def save_generator(model: Generator, folder: str | Path, extra: dict | None = None, overwrite: bool = True) -> Path:
    """Write the checkpoint folder atomically; `extra` joins the config in generator.json."""
    folder = Path(folder)
    meta = {"format": FORMAT, "kind": model.kind, "config": model.config(), **(extra or {})}
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_meta(folder: str | Path) -> dict:
    """The generator.json of a checkpoint folder, checked for its format."""
    folder = Path(folder)
    return read_format_json(folder / CONFIG_FILE, FORMAT, f"'{folder}' is not a generator checkpoint: it has no {CONFIG_FILE}; "
                            "give a folder written by `teachset generator train`")


def bundled_generators() -> list[str]:
    """Names of the checkpoints that ship with teachset (load them as "teachset:NAME")."""
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if BUNDLED_DIR.is_dir() else []


def build_generator(kind: str, config: dict) -> Generator:
    """An untrained generator of `kind` from its config; a stage's base (config base_kind and base_config) first."""
    config = dict(config)
    if "base_kind" in config:
        config["base"] = build_generator(config.pop("base_kind"), config.pop("base_config"))
    return KINDS[kind](**config)


def load_generator(path: str | Path, **external_options) -> Generator:
    """A checkpoint folder written by teachset, a bundled one ("teachset:elpv-64"), or a TorchScript
    file (`external_options` as TorchScriptGenerator.load takes them), frozen. Checkpoints carry
    their generator.json as `.meta`; every kind carries where it came from as `.source`."""
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
        model = TorchScriptGenerator.load(path, **external_options)
        model.source = source
        return model
    meta = read_meta(path)
    if meta["kind"] not in KINDS:
        raise TeachsetError(f"generator kind '{meta['kind']}' in '{path}' is unknown to this teachset ({', '.join(KINDS)})")
    model = build_generator(meta["kind"], meta["config"])
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
