import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from image_files import write_image

# Tests never download, and keep their feature cache out of the user's.
os.environ["TEACHSET_OFFLINE"] = "1"
_OWN_CACHE = None
if "TEACHSET_CACHE" not in os.environ:
    _OWN_CACHE = os.environ["TEACHSET_CACHE"] = tempfile.mkdtemp(prefix="teachset-test-cache-")


def pytest_sessionfinish(session, exitstatus):
    """The cache folder the tests made goes with them (one a user set is left alone)."""
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Two classes of 6 small gray images: 'bright' (mean ~200) and 'dark' (mean ~50)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name, level in (("bright", 200), ("dark", 50)):
        for i in range(6):
            pixels = np.clip(rng.normal(level, 20, size=(20, 20)), 0, 255).astype(np.uint8)
            write_image(root / name / f"{i}.png", pixels)
    return root


@pytest.fixture(scope="session")
def digits16():
    from teachset.data import load_dataset

    return load_dataset("digits", image_size=16)
