"""Typed options: each field of an options dataclass carries its help and its limits, so that
checking a value, the command-line flag and its default come from one place.

    @dataclass
    class TeacherOptions:
        epochs: int = option(1000, "teacher epochs", minimum=1)
        def __post_init__(self): check_fields(self)

`check_fields` raises OptionError naming the field; `teachset.cli.common.add_options` turns the
fields into flags (--epochs, with the help and the default).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .errors import OptionError


def option(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
           above: float | None = None, flag: bool = True) -> Any:
    """A dataclass field with its help text, allowed choices and lower bound (inclusive `minimum`,
    exclusive `above`). flag=False keeps it off the command line."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "above": above, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(obj) -> None:
    """Check every field of an options dataclass against its declared choices and bounds."""
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None:
            continue
        choices = meta.get("choices")
        if choices and value not in choices:
            raise OptionError(f.name, f"{{option}} must be one of {', '.join(map(str, choices))}; got {value!r}")
        minimum, above = meta.get("minimum"), meta.get("above")
        if minimum is not None and value < minimum:
            raise OptionError(f.name, f"{{option}} must be at least {minimum}; got {value}")
        if above is not None and value <= above:
            raise OptionError(f.name, f"{{option}} must be above {above}; got {value}")


def field_types(cls) -> dict[str, Any]:
    """The resolved annotation of every field (the modules use `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def coerce(cls, name: str, value: Any) -> Any:
    """A value read from text (a --param, a TOML file) as the field's type: '3' -> 3 for an int field."""
    kind = field_types(cls)[name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # "int | None": the type that is not None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    base = kind
    if base in (int, float) and isinstance(value, str):
        try:
            return base(value)
        except ValueError:
            raise OptionError(name, f"{{option}} must be a number; got {value!r}") from None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if base is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise OptionError(name, f"{{option}} must be true or false; got {value!r}")
    return value


def build(cls, values: dict, what: str):
    """cls(**values) with unknown names refused in one line that lists the allowed ones, and text values coerced."""
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise OptionError(unknown[0], f"{what} has no parameter {{option}}; it takes: {', '.join(allowed) or 'none'}")
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()})
