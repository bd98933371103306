"""Datasets: folder-per-class, CSV manifest, multi-channel TIFF, and the bundled offline datasets."""

from __future__ import annotations

from pathlib import Path

from .. import defaults
from ..errors import TeachsetError
from .bundled import BUNDLED
from .cache import cached, file_listing
from .dataset import ImageDataset
from .files import folder_items, load_files, manifest_items
from .images import parse_channels

__all__ = ["BUNDLED", "ImageDataset", "load_dataset"]


def load_dataset(source: str, image_size: int = defaults.IMAGE_SIZE, channels: str | None = None, skip_bad: bool = False,
                 classes: list[str] | str | None = None) -> ImageDataset:
    """Load a bundled dataset by name, a folder with one sub-folder per class, or a CSV manifest.

    Images are resized to `image_size` square and kept in [0, 1]. `channels` maps source channels
    to R,G,B (e.g. "2,1,0") for multi-channel TIFFs. Unreadable files are an error unless
    `skip_bad`, in which case they are left out and listed in `dataset.skipped`. `classes` keeps
    only the named classes, in that order (a list, or names separated by commas).
    """
    if not 8 <= image_size <= 1024:
        raise TeachsetError(f"image size {image_size} is out of range; use a size between 8 and 1024 pixels")
    spec = {"source": str(source), "image_size": image_size, "channels": channels, "skip_bad": skip_bad}
    if classes:
        spec["classes"] = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
    if source in BUNDLED:
        bundled = BUNDLED[source]
        return cached(spec, [bundled.version()], lambda: bundled.load(image_size, spec, skip_bad))
    path = Path(source).expanduser()
    if not path.exists():
        raise TeachsetError(
            f"'{source}' is neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing folder or CSV file"
        )
    path = path.resolve()
    spec["source"] = str(path)
    if path.is_dir():
        items = folder_items(path)
    elif path.suffix.lower() == ".csv":
        items = manifest_items(path)
    else:
        raise TeachsetError(f"'{source}' is a file but not a .csv manifest; give a folder of class sub-folders or a CSV")
    listing = file_listing([path, *(item[0] for item in items)]) if path.is_file() else file_listing(item[0] for item in items)
    return cached(spec, [[str(i[0]), i[1], i[2], i[3]] for i in items] + listing,
                  lambda: load_files(items, name=path.stem if path.is_file() else path.name, spec=spec, image_size=image_size,
                                     channels=parse_channels(channels), skip_bad=skip_bad))
