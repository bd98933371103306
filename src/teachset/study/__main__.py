"""`python -m teachset.study create | serve | analyze`: the study commands without the main CLI."""

from __future__ import annotations

import argparse
import sys

from ..errors import TeachsetError
from .cli import STUDY_EPILOG, add_study_subcommands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teachset.study", epilog=STUDY_EPILOG,
                                     description="Teach real people with teaching sets and measure what they learned.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_subcommands(parser.add_subparsers(dest="study_command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except TeachsetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
