"""Writing small image files for tests (a module of its own: `conftest` names two modules here)."""

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path
