"""The teachset command line: one module per command group, each parsing its flags and calling
the library. Every command has worked examples in its --help."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import OptionError, TeachsetError
from ..threads import THREADS_ENV, configure_threads
from . import data, evaluate, explain, generator, gtn, run, study, teach
from .common import examples

GROUPS = (data, teach, evaluate, run, generator, explain, gtn, study)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teachset",
        description="Build small teaching sets that teach people the difference between image classes, and measure how well they teach.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples("""
teachset demo                      # every method on the bundled elpv, fresh students, an HTML report
teachset datasets                  # the bundled datasets
teachset select elpv --method kcenters --per-class 5 --out sets/kcenters
teachset evaluate sets/kcenters --repeats 5
"""))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of this process (default: its share of the cores: all of them, or cores / --workers)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def _flag_of(parser: argparse.ArgumentParser, argv: list[str], option: str) -> str | None:
    """The flag of the command being run whose destination is `option` (None if it has none)."""
    action = parser
    for word in argv:  # walk down the sub-commands named on the command line
        sub = next((a for a in action._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            continue
        action = sub.choices[word]
    return next((a.option_strings[0] for a in action._actions if a.dest == option and a.option_strings), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.threads:
        os.environ[THREADS_ENV] = str(args.threads)  # for this process and the workers it starts
    if args.command not in ("datasets", "report", "study"):  # the commands that compute: set torch's threads once, here
        configure_threads(1)
    try:
        args.func(args)
    except OptionError as error:
        flag = _flag_of(parser, argv, error.option)
        print(f"teachset: error: {error.for_flag(flag) if flag else error}", file=sys.stderr)
        return 2
    except TeachsetError as error:
        print(f"teachset: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("teachset: interrupted; finished artifacts are kept, unfinished ones were not written", file=sys.stderr)
        return 130
    return 0
