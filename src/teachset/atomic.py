"""Write files and folders so that a reader never sees half of one: write beside, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_dir(target: Path, overwrite: bool = False):
    """Yield a temporary folder beside `target`; on success it becomes `target` in one rename."""
    target = Path(target)
    if target.exists() and not overwrite:
        from .errors import TeachsetError

        raise TeachsetError(f"'{target}' already exists; choose another output folder or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        _publish_modes(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish_modes(folder: Path) -> None:
    """mkdtemp makes a private folder; give it (and its files) the modes a plain mkdir/open would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def atomic_write_bytes(path: Path, data: bytes | Callable[[BinaryIO], object]) -> None:
    """`data` (bytes, or a function that writes them to the open file) written beside `path` and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_format_json(path: Path, expected_format: str, missing: str) -> dict:
    """A JSON file teachset wrote, checked for its format tag; `missing` is the error when absent."""
    from .errors import TeachsetError

    if not path.is_file():
        raise TeachsetError(missing)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TeachsetError(f"'{path}' is not valid JSON ({error}); write it again with teachset") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise TeachsetError(f"'{path}' has format {found!r}; this teachset reads {expected_format}")
    return meta


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line, the whole file written atomically."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class JsonlLog:
    """A log that grows one JSON line per record, flushed as it is written (a kill loses at most
    the line being written). Use as a context manager."""

    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "JsonlLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
