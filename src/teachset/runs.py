"""Numbered run folders (runs/00000-demo-elpv, ...) with the options written before the run starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .atomic import write_json
from .errors import TeachsetError


def new_run_dir(root: str | Path, tag: str, options: dict) -> Path:
    """Make root/NNNNN-tag (next free number) and write options.json into it first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    number = max(taken, default=-1) + 1
    while True:
        run_dir = root / f"{number:05d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', tag)}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:  # another run took the number first
            number += 1
    write_json(run_dir / "options.json", options)
    return run_dir


def run_options(run_dir: str | Path, kind: str = "", name: str = "options.json") -> dict:
    """The record (options.json, or `name`) a run folder wrote first (a clear error where there is none)."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise TeachsetError(f"'{run_dir}' is not a {kind + ' ' if kind else ''}run folder: it has no {name}")
    return json.loads(path.read_text())
