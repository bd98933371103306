"""Datasets from the user's files: a folder with one sub-folder per class, or a CSV manifest."""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import TeachsetError
from ..imaging import to_uint8
from ..threads import cores
from .dataset import ImageDataset
from .images import IMAGE_SUFFIXES, percentile_scale, read_pixels, resize_square


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def folder_items(root: Path) -> list[tuple[Path, str, str, str | None]]:
    """(path, class, id, group) for each image in root/<class>/..., classes and files sorted."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TeachsetError(
            f"'{root}' has no class sub-folders; put the images of each class in a sub-folder named after the class"
        )
    items = []
    empty = []
    for class_dir in classes:
        paths = sorted(p for p in class_dir.rglob("*") if _is_image(p))
        empty += [] if paths else [class_dir.name]
        items += [(path, class_dir.name, path.relative_to(root).as_posix(), None) for path in paths]
    if not items:
        raise TeachsetError(f"no images found under '{root}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if empty:
        raise TeachsetError(f"class folder(s) {empty} under '{root}' hold no images; add images or remove the folder(s)")
    return items


def manifest_items(manifest: Path) -> list[tuple[Path, str, str, str | None]]:
    """(path, class, id, group) for each row of a CSV with columns path,label[,group]; paths relative to the CSV."""
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise TeachsetError(
                f"manifest '{manifest}' lacks column(s) {', '.join(missing)} (it has: {', '.join(columns) or 'none'}); "
                "its first row must be a header with path,label and optionally group"
            )
        rows = list(reader)
    if not rows:
        raise TeachsetError(f"manifest '{manifest}' has a header but no rows; add one row per image")
    items = []
    for line, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise TeachsetError(f"manifest '{manifest}' line {line}: empty path or label; fill it in or delete the line")
        path = Path(row["path"])
        path = path if path.is_absolute() else manifest.parent / path
        items.append((path, row["label"].strip(), row["path"], row.get("group") or None))
    return items


def chosen_classes(spec: dict, available: list[str]) -> list[str]:
    """The classes a dataset keeps: those named in spec["classes"] (in that order), else all, sorted."""
    wanted = spec.get("classes")
    if not wanted:
        return sorted(available)
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise TeachsetError(f"class(es) {unknown} are not in the dataset; its classes are: {', '.join(sorted(available))}")
    if len(set(wanted)) < 2:
        raise TeachsetError(f"keep at least two different classes to tell apart, not {wanted}")
    return list(dict.fromkeys(wanted))


def load_files(
    items: list[tuple[Path, str, str, str | None]],
    *,
    name: str,
    spec: dict,
    image_size: int,
    channels: list[int] | None,
    skip_bad: bool,
) -> ImageDataset:
    """Read, resize and scale every listed file (of the classes the spec keeps); unreadable ones are an
    error unless skip_bad."""
    class_names = chosen_classes(spec, list({item[1] for item in items}))
    items = [item for item in items if item[1] in class_names]
    def read(item):
        try:
            array, eight_bit = read_pixels(item[0], channels)
        except Exception as error:  # any failure to decode one user file makes that file bad, nothing more
            return item, None, False, f"{type(error).__name__}: {error}".strip()
        return item, resize_square(torch.from_numpy(array)[None], image_size)[0].numpy(), eight_bit, None

    pixels, kept, skipped, all_eight_bit = [], [], [], True
    with ThreadPoolExecutor(max_workers=cores()) as pool:  # decoding releases the interpreter lock: every core helps
        for item, array, eight_bit, error in tqdm(pool.map(read, items), total=len(items), desc=f"reading {name}", unit="img",
                                                   leave=False, disable=len(items) < 200):
            if error is not None:
                skipped.append((str(item[0]), error))
                continue
            all_eight_bit &= eight_bit
            pixels.append(array)
            kept.append(item)
    if skipped and not skip_bad:
        listed = "; ".join(f"{p} ({why[:80]})" for p, why in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise TeachsetError(
            f"{len(skipped)} file(s) could not be read: {listed}{more}; fix or remove them, or pass --skip-bad to leave them out"
        )
    if not kept:
        raise TeachsetError(f"none of the {len(items)} files of '{name}' could be read")
    n_channels = max(p.shape[0] for p in pixels)
    images = np.stack([np.repeat(p, n_channels, axis=0) if p.shape[0] < n_channels else p for p in pixels])
    info = {"resize": f"stretched to {image_size}x{image_size}, bilinear with antialiasing"}
    if channels is not None:
        info["channel_to_rgb"] = channels
    if all_eight_bit:
        images = images / 255.0
        info["intensity"] = "8-bit values / 255"
    else:
        images, ranges = percentile_scale(images)
        info["intensity"] = {"per_channel_range_0.1_99.9_percentile": ranges}
    index = {c: i for i, c in enumerate(class_names)}
    groups = [item[3] for item in kept]
    return ImageDataset(
        name=name,
        images=to_uint8(images),
        labels=np.array([index[item[1]] for item in kept], dtype=np.int64),
        class_names=class_names,
        ids=[item[2] for item in kept],
        spec=spec,
        groups=groups if any(g is not None for g in groups) else None,
        info=info,
        skipped=skipped,
        sources=[str(item[0]) for item in kept],
    )
