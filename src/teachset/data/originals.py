"""The way back from a working-size image to its original: the source file at its own resolution
(with the dataset's channel mapping and intensity scaling), or a bundled dataset's original array.
Models need small square images; a person learning from a real image never did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TeachsetError
from ..imaging import to_uint8
from .images import parse_channels, read_pixels


def read_original(source: str, spec: dict, info: dict) -> np.ndarray:
    """The original of one image as uint8 (C, H, W), scaled as its dataset scaled it."""
    from .bundled import BUNDLED

    name, _, index = source.rpartition(":")
    if name in BUNDLED and BUNDLED[name].arrays is not None and index.isdigit():
        return to_uint8(np.clip(BUNDLED[name].arrays()[0][int(index)], 0, 1))
    try:
        pixels, eight_bit = read_pixels(Path(source), parse_channels(spec.get("channels")))
    except Exception as error:  # moved, deleted, or unreadable since the dataset was loaded
        raise TeachsetError(f"the original '{source}' cannot be read now ({type(error).__name__}); "
                            "restore it, or show the working-size images") from None
    intensity = info.get("intensity")
    ranges = intensity.get("per_channel_range_0.1_99.9_percentile") if isinstance(intensity, dict) else None
    if ranges and pixels.shape[0] < len(ranges):  # a grayscale file in a dataset with colour ones
        pixels = np.repeat(pixels, len(ranges), axis=0)
    if eight_bit and not ranges:
        return to_uint8(pixels / 255.0)
    if not ranges:
        raise TeachsetError(f"the dataset records no intensity scaling for '{source}'; load it again with this teachset")
    low, high = (np.array([r[i] for r in ranges], dtype=np.float32)[:, None, None] for i in (0, 1))
    return to_uint8(np.clip((pixels - low) / (high - low), 0, 1))
