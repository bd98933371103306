"""Reading one image file into float pixels, resizing to a square, and scaling to [0, 1].

Every file becomes float32 (C, H, W) in its native units, C = 1 or 3. PNG, JPEG and the other
Pillow formats are read with Pillow; .tif/.tiff with tifffile, so that multi-channel microscopy
(BBBC021-style DNA / tubulin / actin stacks) keeps its channels, which are then mapped to RGB by
an explicit, recorded `channels` list. Images are resized to a square by stretching (all content
kept, aspect not), with antialiasing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import TeachsetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def parse_channels(text: str | None) -> list[int] | None:
    """'2,1,0' -> [2, 1, 0]: source channel for R, G, B ('0' alone: that channel as grayscale)."""
    if text is None or text == "":
        return None
    try:
        channels = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise TeachsetError(f"--channels '{text}' is not a list of channel numbers; write e.g. 2,1,0 (source channels for R,G,B)") from None
    if len(channels) not in (1, 3) or min(channels) < 0:
        raise TeachsetError(f"--channels '{text}' must name 1 (grayscale) or 3 (R,G,B) non-negative source channels")
    return channels


def _tiff_pixels(path: Path, channels: list[int] | None) -> np.ndarray:
    array = np.squeeze(tifffile.imread(path))
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3:
        if array.shape[-1] <= 8 and array.shape[-1] < array.shape[0]:  # (H, W, C) -> (C, H, W)
            array = np.moveaxis(array, -1, 0)
    else:
        raise ValueError(f"a TIFF of shape {array.shape}; expected (H, W), (C, H, W) or (H, W, C)")
    if channels is None:
        channels = [0] if array.shape[0] == 1 else [0, 1, 2]
        if array.shape[0] == 2:
            raise ValueError("a 2-channel TIFF: say which channels make the image with --channels, e.g. 0,1,1")
    if max(channels) >= array.shape[0]:
        raise ValueError(f"--channels asks for channel {max(channels)} but the file has {array.shape[0]} channels")
    return array[channels].astype(np.float32)


_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def _pillow_pixels(path: Path) -> tuple[np.ndarray, bool]:
    with Image.open(path) as image:
        image.load()
        if image.mode in _HIGH_BIT_MODES:
            return np.asarray(image, dtype=np.float32)[None], False
        rgb = image.convert("RGB")
    array = np.moveaxis(np.asarray(rgb, dtype=np.float32), -1, 0)
    if (array[0] == array[1]).all() and (array[1] == array[2]).all():
        array = array[:1]  # grayscale, whatever the file's mode
    return array, True


def read_pixels(path: Path, channels: list[int] | None = None) -> tuple[np.ndarray, bool]:
    """(float32 (C, H, W) in native units, whether the file was 8-bit). Raises on unreadable files."""
    if path.suffix.lower() in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            eight_bit = tif.pages[0].dtype == np.uint8
        return _tiff_pixels(path, channels), eight_bit
    array, eight_bit = _pillow_pixels(path)
    if channels is not None:
        if max(channels) >= array.shape[0]:
            raise ValueError(f"--channels asks for channel {max(channels)} but the image has {array.shape[0]}")
        array = array[channels]
    return array, eight_bit


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size), bilinear with antialiasing."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def percentile_scale(images: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[np.ndarray, list]:
    """Per-channel, dataset-wide intensity scaling to [0, 1] for images that are not 8-bit.

    One range for the whole dataset (not one per image), so intensity differences between
    classes, often the signal in microscopy, survive. Returns the scaled images and the ranges.
    """
    ranges = []
    out = np.empty_like(images)
    for c in range(images.shape[1]):
        lo, hi = np.percentile(images[:, c], [low, high])
        hi = hi if hi > lo else lo + 1.0
        out[:, c] = (images[:, c] - lo) / (hi - lo)
        ranges.append([float(lo), float(hi)])
    return np.clip(out, 0.0, 1.0), ranges
