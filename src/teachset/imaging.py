"""Small image helpers every layer may use: float images to 8 bits, PNG bytes, image grids."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write_bytes


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [0, 1] (a tensor or an array, any shape) -> uint8, rounded and clipped."""
    x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def to_pil(image: np.ndarray) -> Image.Image:
    """One uint8 image (C, H, W), C = 1 or 3 -> a PIL image (grayscale or RGB)."""
    return Image.fromarray(image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1))


def resized(picture: Image.Image, size: int) -> Image.Image:
    """A square image at size x size pixels: bicubic to enlarge, Lanczos to reduce (as a study shows it)."""
    if picture.size == (size, size):
        return picture
    up = size > max(picture.size)
    return picture.resize((size, size), Image.Resampling.BICUBIC if up else Image.Resampling.LANCZOS)


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """A PNG file of one uint8 image (C, H, W), or of a PIL image."""
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else to_pil(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_grid(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 2) -> Image.Image:
    """(n, C, H, W) float in [0, 1] or uint8 -> one image, row-major, `ncol` per row, white gaps."""
    x = images if isinstance(images, np.ndarray) and images.dtype == np.uint8 else to_uint8(images)
    n, c, h, w = x.shape
    nrow = -(-n // ncol)
    grid = np.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return to_pil(grid)


def save_grid(images, path: str | Path, ncol: int) -> Path:
    """An image grid written atomically as a PNG file."""
    atomic_write_bytes(Path(path), png_bytes(image_grid(images, ncol)))
    return Path(path)
