"""Decoded datasets kept on disk, so that every command after the first opens them in seconds.

A dataset is stored once per (spec: source, image size, channels, classes, skip_bad) and the
listing of what it was read from (each file's path, size and modification time; a bundled
dataset's package version): images as one uint8 array that later loads memory-map (the pages are
shared, not copied into each process), labels, ids and groups beside it. A file added, removed or
modified changes the key. Written atomically: an interrupted write leaves no cache that a later
run would read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_dir
from ..defaults import cache_dir
from .dataset import ImageDataset

FORMAT = "teachset.dataset-cache/2"
META_FILE = "dataset.json"


def file_listing(paths) -> list:
    """(path, size, modification time) of every file: what a changed file changes."""
    listing = []
    for path in paths:
        try:
            stat = os.stat(path)
            listing.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:  # unreadable now: the load that follows says so
            listing.append((str(path), None, None))
    return listing


def cache_key(spec: dict, listing: list) -> str:
    return hashlib.sha256(json.dumps([FORMAT, spec, listing], sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached(spec: dict, listing: list, build: Callable[[], ImageDataset]) -> ImageDataset:
    """The dataset of `spec` from the cache (images memory-mapped, read-only), or `build()` it and store it."""
    folder = cache_dir() / "datasets" / cache_key(spec, listing)
    found = _read(folder)
    if found is not None:
        return found
    dataset = build()
    meta = {"format": FORMAT, "name": dataset.name, "class_names": dataset.class_names, "ids": dataset.ids,
            "groups": dataset.groups, "spec": dataset.spec, "info": dataset.info, "skipped": dataset.skipped,
            "fingerprint": dataset.fingerprint, "sources": dataset.sources}
    try:
        with atomic_dir(folder, overwrite=True) as tmp:
            np.save(tmp / "images.npy", np.ascontiguousarray(dataset.images))
            np.save(tmp / "labels.npy", dataset.labels)
            (tmp / META_FILE).write_text(json.dumps(meta))
    except OSError:  # a full or read-only disk: the dataset works without its cache
        pass
    return dataset


def _read(folder: Path) -> ImageDataset | None:
    try:
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format") != FORMAT:
            return None
        images = np.load(folder / "images.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy")
    except (OSError, ValueError):  # absent, or damaged: build it again
        return None
    dataset = ImageDataset(meta["name"], images, labels, meta["class_names"], meta["ids"], meta["spec"], meta["groups"],
                           meta["info"], [tuple(s) for s in meta["skipped"]], sources=meta["sources"])
    dataset.__dict__["fingerprint"] = meta["fingerprint"]  # known: hashing every pixel again is what the cache saves
    return dataset
