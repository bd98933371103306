"""The TeachingSet artifact: the contract between teaching methods, evaluation, reports and the study.

On disk a teaching set is a folder:

    images/<class>/<nn>_<id>.png   the teaching images, 8-bit, at the dataset's image size
    teaching_set.json              format, method, params, seed, classes, dataset (spec +
                                   fingerprint), code version, and one entry per image: file,
                                   label, class, source_id (selected images) and latent
                                   (generated images)
    curve.jsonl                    the training curve, one record per step (teachers only)
    originals/<class>/<nn>_<id>.png  real images at their original resolution (`export_originals`)

Every method returns one (teachset.methods); everything downstream reads only this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import __version__
from .atomic import atomic_dir, read_format_json, read_jsonl, write_jsonl
from .errors import TeachsetError
from .imaging import png_bytes, to_uint8

FORMAT = "teachset.teaching_set/1"
META_FILE = "teaching_set.json"
CURVE_FILE = "curve.jsonl"
ORIGINALS = "originals"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


@dataclass
class TeachingSet:
    images: np.ndarray  # uint8 (b, C, H, W)
    labels: np.ndarray  # int (b,)
    class_names: list[str]
    method: str
    params: dict
    seed: int | None
    dataset: dict  # {"name", "fingerprint", "spec"}
    source_ids: list[str | None] | None = None
    latents: np.ndarray | None = None  # float (b, latent_dim)
    curve: list[dict] | None = None  # the training curve of a teacher, one record per step
    sources: list[str | None] | None = None  # real images: the way back to each original (file or bundled array)
    code_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path: Path | None = None

    def __post_init__(self):
        b = len(self.images)
        assert self.images.dtype == np.uint8 and self.images.ndim == 4, (self.images.dtype, self.images.shape)
        assert self.labels.shape == (b,)
        assert self.source_ids is None or len(self.source_ids) == b
        assert self.latents is None or len(self.latents) == b
        self.params = json.loads(json.dumps(self.params))  # as it will read back: tuples become lists

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_selection(cls, dataset, indices, method: str, params: dict, seed: int | None) -> "TeachingSet":
        """A teaching set of real images: those of `dataset` at `indices`."""
        indices = np.asarray(indices, dtype=np.int64)
        return cls(images=dataset.images[indices].copy(), labels=dataset.labels[indices].copy(),
                   class_names=list(dataset.class_names), method=method, params=params, seed=seed,
                   dataset=dataset.record(), source_ids=[dataset.ids[i] for i in indices],
                   sources=None if dataset.sources is None else [dataset.sources[i] for i in indices])

    @classmethod
    def generated(cls, images, labels, class_names: list[str], dataset: dict, method: str, params: dict, seed: int | None,
                  latents=None, curve: list[dict] | None = None) -> "TeachingSet":
        """A teaching set of generated images: float images in [0, 1] (tensor or array), their labels,
        the record of the dataset they teach (`ImageDataset.record()`), and their latent codes if any."""
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
        if isinstance(latents, torch.Tensor):
            latents = latents.detach().cpu().numpy()
        return cls(images=to_uint8(images), labels=labels.copy(), class_names=list(class_names), method=method,
                   params=params, seed=seed, dataset=dataset, curve=curve,
                   latents=None if latents is None else np.asarray(latents, dtype=np.float32))

    def export_originals(self) -> Path:
        """Write the set's real images at their original resolution (with the dataset's channel mapping and
        scaling) into originals/ inside its folder, atomically, beside the working-size images."""
        from .data.originals import read_original

        if self.path is None or not self.sources:
            raise TeachsetError("only a saved teaching set of real images has originals to export")
        folder = self.path / ORIGINALS
        with atomic_dir(folder, overwrite=True) as tmp:
            for file, source in zip(self._files(), self.sources):
                target = tmp / Path(file).relative_to("images")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png_bytes(read_original(source, self.dataset.get("spec", {}), self.dataset.get("info", {}))))
        return folder

    def original_files(self) -> list[Path] | None:
        """The exported originals, in the set's order (None where they were not exported)."""
        if self.path is None or not (self.path / ORIGINALS).is_dir():
            return None
        files = [self.path / ORIGINALS / Path(file).relative_to("images") for file in self._files()]
        return files if all(f.is_file() for f in files) else None

    def tensor(self) -> torch.Tensor:
        """Images as float32 in [0, 1], shape (b, C, H, W)."""
        return torch.from_numpy(self.images).float().div_(255.0)

    def per_class(self) -> list[list[int]]:
        """Indices of the teaching images of each class, classes in order."""
        return [np.flatnonzero(self.labels == c).tolist() for c in range(len(self.class_names))]

    def _files(self) -> list[str]:
        files = []
        for i, label in enumerate(self.labels):
            tag = _safe(Path(self.source_ids[i]).stem) if self.source_ids and self.source_ids[i] else "generated"
            files.append(f"images/{_safe(self.class_names[label])}/{i:02d}_{tag}.png")
        return files

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the folder atomically: a reader sees the old folder or the whole new one, never half."""
        folder = Path(folder)
        files = self._files()
        items = []
        for i, file in enumerate(files):
            item = {"file": file, "label": int(self.labels[i]), "class": self.class_names[self.labels[i]]}
            if self.source_ids is not None:
                item["source_id"] = self.source_ids[i]
            if self.sources is not None:
                item["original"] = self.sources[i]
            if self.latents is not None:
                item["latent"] = [float(v) for v in self.latents[i]]
            items.append(item)
        meta = {
            "format": FORMAT,
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "class_names": self.class_names,
            "dataset": self.dataset,
            "image_shape": list(self.images.shape[1:]),
            "code_version": self.code_version,
            "created": self.created,
            "items": items,
        }
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            for image, file in zip(self.images, files):
                (tmp / file).parent.mkdir(parents=True, exist_ok=True)
                (tmp / file).write_bytes(png_bytes(image))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
            if self.curve:
                write_jsonl(tmp / CURVE_FILE, self.curve)
        self.path = folder
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TeachingSet":
        folder = Path(folder)
        meta = read_format_json(folder / META_FILE, FORMAT,
                                f"'{folder}' is not a teaching set: it has no {META_FILE}; give a folder written by teachset")
        images = []
        shape = tuple(meta["image_shape"])
        for item in meta["items"]:
            path = folder / item["file"]
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("L" if shape[0] == 1 else "RGB"))
            except (OSError, ValueError) as error:
                raise TeachsetError(f"teaching image '{path}' cannot be read ({error}); regenerate the teaching set") from None
            pixels = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
            if pixels.shape != shape:
                raise TeachsetError(f"teaching image '{path}' is {pixels.shape}, the set says {shape}")
            images.append(pixels)
        items = meta["items"]
        return cls(
            images=np.stack(images),
            labels=np.array([item["label"] for item in items], dtype=np.int64),
            class_names=meta["class_names"],
            method=meta["method"],
            params=meta["params"],
            seed=meta["seed"],
            dataset=meta["dataset"],
            source_ids=[item.get("source_id") for item in items] if "source_id" in items[0] else None,
            sources=[item.get("original") for item in items] if "original" in items[0] else None,
            latents=np.array([item["latent"] for item in items], dtype=np.float32) if "latent" in items[0] else None,
            curve=read_jsonl(folder / CURVE_FILE) if (folder / CURVE_FILE).is_file() else None,
            code_version=meta["code_version"],
            created=meta["created"],
            path=folder,
        )
