"""Image grids as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_write_bytes


def image_grid(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 2) -> Image.Image:
    """(n, C, H, W) float in [0, 1] or uint8 -> one image, row-major, `ncol` per row, white gaps."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype != np.uint8:
        x = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    n, c, h, w = x.shape
    nrow = -(-n // ncol)
    grid = np.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return Image.fromarray(grid[0] if c == 1 else np.moveaxis(grid, 0, -1))


def save_grid(images, path: str | Path, ncol: int) -> Path:
    import io

    buffer = io.BytesIO()
    image_grid(images, ncol).save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
