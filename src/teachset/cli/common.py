"""What every command group shares: sub-commands with worked examples, the dataset and feature
flags, and flags made from an options dataclass (so that each default lives in the dataclass)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import types
import typing

from .. import defaults
from ..errors import TeachsetError
from ..options import field_types


def examples(text: str) -> str:
    return "examples:\n" + "\n".join("  " + line for line in text.strip().splitlines())


def add_command(subparsers, name: str, func, help: str, example_lines: str) -> argparse.ArgumentParser:
    """A sub-command with its help, worked examples and handler."""
    p = subparsers.add_parser(name, help=help, description=help, epilog=examples(example_lines),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def add_dataset_args(p: argparse.ArgumentParser, positional: bool = True, size: int | None = defaults.IMAGE_SIZE) -> None:
    if positional:
        p.add_argument("dataset", help="a bundled dataset name (see `teachset datasets`), a folder with one sub-folder per "
                                       "class, or a CSV manifest (path,label[,group])")
    p.add_argument("--size", type=int, default=size,
                   help="square image size in pixels" + (f" (default {size})" if size else " (default: the generator's)"))
    p.add_argument("--channels", default=None, help="source channels for R,G,B of multi-channel TIFFs, e.g. 2,1,0 (recorded)")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable image files (and list them) instead of stopping")
    p.add_argument("--classes", default=None, help="keep only these classes, in this order, e.g. T-shirt-top,Shirt (recorded)")


def add_feature_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extractor", default=defaults.EXTRACTOR,
                   help=f"frozen feature extractor (default {defaults.EXTRACTOR}; see `teachset features --list`)")
    p.add_argument("--input-size", type=int, default=None, help="resize images to this size before the extractor (default: as loaded)")


def load_dataset(args, source: str | None = None, size: int | None = None):
    """The dataset the flags name, with its summary (and any skipped files) on stderr."""
    from ..data import load_dataset as load

    dataset = load(source or args.dataset, image_size=size or args.size, channels=args.channels, skip_bad=args.skip_bad,
                   classes=args.classes)
    if dataset.skipped:
        names = ", ".join(path for path, _ in dataset.skipped[:5])
        print(f"skipped {len(dataset.skipped)} unreadable file(s): {names}{' ...' if len(dataset.skipped) > 5 else ''}",
              file=sys.stderr)
    print(dataset.describe(), f"[fingerprint {dataset.fingerprint}]", file=sys.stderr)
    return dataset


def parse_params(pairs: list[str] | None) -> dict:
    """--param NAME=VALUE pairs; values are JSON where they parse as JSON (numbers, true, null), else text."""
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise TeachsetError(f"--param '{pair}' is not NAME=VALUE; write e.g. --param order=least")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(p: argparse.ArgumentParser, cls, names: list[str] | None = None, exclude: tuple[str, ...] = (),
                help: dict[str, str] | None = None) -> None:
    """One flag per field of the options dataclass `cls` (those in `names`, or every field declared
    with a help text), with the field's type, choices, help and default."""
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        text = (help or {}).get(f.name) or f.metadata.get("help")
        if f.name in exclude or (names is not None and f.name not in names) or not text or not f.metadata.get("flag", True):
            continue
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # "float | None": a float flag
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if kind is bool:
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction if default else "store_true",
                           default=default, help=text)
            continue
        kwargs = {"type": kind, "default": default, "choices": f.metadata.get("choices")}
        if typing.get_origin(kind) is tuple:
            kwargs |= {"type": typing.get_args(kind)[0], "nargs": "+", "default": list(default)}
        shown = "" if default in (None, ()) or f.metadata.get("choices") else f" (default {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
        p.add_argument(flag(f.name), help=text + shown, **kwargs)


def options_from(args, cls, **overrides):
    """An options dataclass from the parsed flags that add_options made (and any overrides)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)
    return cls(**(values | overrides))


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (recorded in the artifacts it makes; `python -m teachset` as `teachset`), or '' when
    called from Python."""
    argv = sys.argv if argv is None else argv
    program = argv[0].replace("\\", "/") if argv else ""
    typed = program.endswith("teachset") or program.endswith("teachset/__main__.py")
    return "teachset " + " ".join(shlex.quote(a) for a in argv[1:]) if typed else ""
