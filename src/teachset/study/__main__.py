"""`python -m teachset.study create | serve | analyze`: the same as `teachset study ...`."""

from __future__ import annotations

import sys

from ..cli import main as teachset_main


def main(argv: list[str] | None = None) -> int:
    return teachset_main(["study", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
