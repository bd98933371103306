"""`teachset study create | serve | analyze`: thin commands over design.py, server.py, analysis.py."""

from __future__ import annotations

import argparse

import sys

from .. import defaults
from ..study.design import DATABASE_ENV
from ..study.settings import StudySettings
from .calibrate import add_loop_subcommands
from .common import add_options, options_from

STUDY_EPILOG = """\
A human study teaches real people with teaching sets and measures what they learned.
  1. teachset study create ...    a study folder: one condition per teaching set, the test images
  2. teachset study serve STUDY   run it; give participants the printed link
  3. teachset study analyze STUDY accuracies with intervals, proxy students beside humans, CSVs

examples:
  teachset study create --name "Solar cells" --dataset elpv \\
      --condition random=runs/0001-random --condition latent=runs/0002-latent --test-images 200
  teachset study serve studies/Solar_cells
  teachset study analyze studies/Solar_cells
"""

CREATE_EPILOG = """\
The test images are drawn (with --seed) from the test split of the teaching sets, without any
teaching image of any condition; every participant gets the same ones in their own order, unless
--per-participant-test. Each teaching set is copied into the study folder, so the study does not
change if it does. Everything participants read is in STUDY/texts.md (Markdown; edit it before
serving; --texts starts from a file of your own), with the classes' display names.

examples:
  # two conditions on the bundled solar-cell dataset, 200 test images each
  teachset study create --name "Solar cells" --dataset elpv \\
      --condition random=runs/0001-random --condition latent=runs/0002-latent --test-images 200

  # a Prolific study with 4 instructed-response checks; 2 failed checks end it with the screen-out code
  teachset study create --name "Digits pilot" --dataset digits --condition kcenters=runs/0003-kcenters \\
      --test-images 50 --prolific --completion-code C1A2B3C4 --attention-checks 4 --screen-out-after 2 \\
      --screen-out-code SCR33N --quota 30 --desktop-only --out studies/pilot

  # a selected and a generated set, both at 256 px; the generated one with its counterfactual strips as aids
  teachset study create --name "Cells at 256" --dataset elpv --condition herding=runs/a --condition latent=runs/b \\
      --display 256 --aid latent

  # own texts, and image checks from a folder of one sub-folder of clear images per class
  teachset study create --name Cells --dataset data/cells.csv --condition A=runs/a --condition B=runs/b \\
      --texts cells-texts.md --attention-checks 3 --check-kind images --check-images data/clear-cells
"""

SERVE_EPILOG = f"""\
Prints the participant link (plain, Prolific, and with an id of your own), the dashboard link and the
preview link (walk through the study; nothing is stored with the data), which carry the study's
secret token: keep them to yourself. Responses go to an SQLite file in the
study folder unless --database (or ${DATABASE_ENV}) names another database. Put the server behind a
TLS reverse proxy for a real study and give its address with --public-url.

examples:
  teachset study serve studies/Solar_cells
  teachset study serve studies/Solar_cells --port 0            # any free port
  {DATABASE_ENV}=postgresql://study@db.internal/study \\
      teachset study serve studies/Solar_cells --host 0.0.0.0 --public-url https://study.example.org
"""

ANALYZE_EPILOG = """\
Reads the responses (the same --database as serve; default: the study's SQLite file) and writes
report.html, trials.csv (one row per answer), participants.csv, events.csv, data_dictionary.csv,
conditions.csv, learning_curve.csv, exclusions.csv, analysis.json and two figures. Only participants
who completed the study count unless --include-incomplete, less those the study's exclusion rules
leave out (listed with the reasons; --no-exclusions counts them). Between conditions: a permutation test on
participant accuracies. The LC and NN proxy students are trained on each teaching set and scored
on the humans' test images (skip with --no-proxy).

examples:
  teachset study analyze studies/Solar_cells
  teachset study analyze studies/Solar_cells --database postgresql://study@db.internal/study --out results/solar
  teachset study analyze studies/pilot --no-proxy --include-incomplete
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0-65535; 0 picks a free one)")
    return value


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def run_create(args: argparse.Namespace) -> None:
    from ..study.create import create_study
    from ..study.design import read_consent, study_warnings

    design = create_study(
        name=args.name, dataset_source=args.dataset, conditions=args.condition, out=args.out,
        consent=read_consent(args.consent), texts=args.texts, check_images=args.check_images, overwrite=args.overwrite,
        settings=options_from(args, StudySettings), display=args.display or "working", mixed_display=args.mixed_display,
        aids=args.aid,
    )
    print(f"study '{design.name}' written to {design.path}: {len(design.conditions)} condition(s) "
          f"({', '.join(f'{c.name}: {len(c.teach)} images' for c in design.conditions)}), "
          f"{design.test_count} test images and {design.settings.attention_checks} attention checks per participant, "
          f"all shown at {design.image_size} px; about {design.estimated_minutes} minutes per participant")
    _warn(study_warnings(design))
    print(f"edit what participants read in {design.path / 'texts.md'}")
    print(f"next: teachset study serve {design.path}")


def run_serve(args: argparse.Namespace) -> None:
    from ..study.design import load_study, study_warnings
    from ..study.server import serve

    design = load_study(args.study)
    _warn(study_warnings(design))
    serve(design, args.database, host=args.host, port=args.port, public_url=args.public_url,
          access_log=args.access_log, threads=args.threads)


def run_analyze(args: argparse.Namespace) -> None:
    from ..study.analysis import analysis_folder, analyze
    from ..study.db import Database
    from ..study.design import load_study

    design = load_study(args.study)
    out = analysis_folder(design, args.out)
    with Database(design.database_url(args.database)) as db:
        summary = analyze(design, db, out, include_incomplete=args.include_incomplete, proxy=not args.no_proxy,
                          extractor=args.extractor, repeats=args.repeats, seed=args.seed,
                          permutations=args.permutations, blocks=args.blocks, exclude=not args.no_exclusions,
                          include_simulated=args.include_simulated)
    for row in summary["conditions"]:
        accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        print(f"{row['condition']}: {row['participants']} participants, human accuracy {accuracy}"
              + ("" if row["proxy_lc"] is None else f", LC {row['proxy_lc']:.3f}, NN {row['proxy_nn']:.3f}"))
    p = summary["comparison"]["overall"]["p_value"]
    if p is not None:
        print(f"between conditions: p = {p:.4f} ({summary['comparison']['overall']['test']})")
    left_out = summary["exclusions"]["excluded"]
    print(f"excluded: {len(left_out)} participant(s)" + ("" if summary["exclusions"]["applied"] else " (not applied)")
          + "".join(f"\n  {e['participant']} ({e['condition']}): {e['reasons']}" for e in left_out))
    print(f"report: {out / 'report.html'}")


def add_study_subcommands(subparsers) -> None:
    """Register create, serve and analyze on an argparse subparsers object."""
    raw = argparse.RawDescriptionHelpFormatter
    create = subparsers.add_parser("create", help="make a study folder from teaching sets and a dataset",
                                   description="Make a study folder: one condition per teaching set.",
                                   epilog=CREATE_EPILOG, formatter_class=raw)
    create.add_argument("--name", required=True, help="the study's title, shown to participants")
    create.add_argument("--dataset", required=True,
                        help="the dataset the teaching sets come from: a bundled name, a class-folder tree or a CSV")
    create.add_argument("--condition", action="append", required=True, metavar="NAME=PATH",
                        help="a condition and its TeachingSet folder; repeat for each condition")
    create.add_argument("--out", help="study folder to write (default studies/<name>)")
    create.add_argument("--texts", metavar="FILE", help="what participants read, as a texts.md file (default: the "
                        "default texts; sections it lacks get them too)")
    create.add_argument("--consent", metavar="FILE", help="the consent text alone (Markdown, blank lines between paragraphs)")
    create.add_argument("--check-images", metavar="FOLDER", help="image attention checks: one sub-folder of clear images "
                        "per class")
    create.add_argument("--overwrite", action="store_true", help="replace an existing study folder")
    create.add_argument("--display", action="append", metavar="MODE", help="the resolution every image is shown at: "
                        "working (default: the working size), N (every image written at N px, enlarged smoothly), or "
                        "original (real images at their original resolution; every condition needs originals); "
                        "NAME=MODE for one condition of its own, with --mixed-display")
    create.add_argument("--mixed-display", action="store_true", help="allow conditions shown at different resolutions "
                        "(recorded in study.json)")
    create.add_argument("--aid", action="append", metavar="NAME[=FOLDER]", help="give condition NAME teaching aids: "
                        "its teaching set's counterfactual strips ('teachset explain'), from its explanations/ folder "
                        "or FOLDER; each teaching image then opens to how it would look as another class")
    add_options(create, StudySettings)
    create.set_defaults(func=run_create)

    serve = subparsers.add_parser("serve", help="run the study's web server",
                                  description="Run a study's web server and print the participant and dashboard links.",
                                  epilog=SERVE_EPILOG, formatter_class=raw)
    serve.add_argument("study", help="the study folder")
    serve.add_argument("--database", help=f"database URL (default ${DATABASE_ENV}, else STUDY/responses.sqlite)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any free port)")
    serve.add_argument("--public-url", help="the address participants use, e.g. https://study.example.org (for the links)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--threads", type=_positive, default=16, help="worker threads for database work (default 16)")
    serve.set_defaults(func=run_serve)

    analyze = subparsers.add_parser("analyze", help="analyse the responses: HTML report and CSV tables",
                                    description="Analyse a study's responses.", epilog=ANALYZE_EPILOG, formatter_class=raw)
    analyze.add_argument("study", help="the study folder")
    analyze.add_argument("--database", help=f"database URL (default ${DATABASE_ENV}, else STUDY/responses.sqlite)")
    analyze.add_argument("--out", help="output folder (default STUDY/analysis)")
    analyze.add_argument("--include-incomplete", action="store_true", help="count participants who did not finish")
    analyze.add_argument("--no-exclusions", action="store_true",
                         help="count the participants the exclusion rules leave out (they are still listed)")
    analyze.add_argument("--include-simulated", action="store_true", help="count simulated participants (study simulate)")
    analyze.add_argument("--no-proxy", action="store_true", help="skip the LC and NN proxy students")
    analyze.add_argument("--extractor", default=defaults.EXTRACTOR,
                         help=f"feature extractor of the proxy students (default {defaults.EXTRACTOR})")
    analyze.add_argument("--repeats", type=_positive, default=defaults.REPEATS,
                         help=f"proxy students per condition (default {defaults.REPEATS})")
    analyze.add_argument("--seed", type=int, default=0, help="seeds the proxy students and the permutation test")
    analyze.add_argument("--permutations", type=_positive, default=10_000, help="permutations of the test (default 10000)")
    analyze.add_argument("--blocks", type=_positive, default=10, help="blocks of the learning curve (default 10)")
    analyze.set_defaults(func=run_analyze)
    add_loop_subcommands(subparsers)  # calibrate, simulate (cli/calibrate.py)


def add_commands(subparsers) -> None:
    """Register the `study` command group on the main CLI's subparsers."""
    study = subparsers.add_parser("study", help="run a human study with teaching sets (create, serve, analyze)",
                                  description="Teach real people with teaching sets and measure what they learned.",
                                  epilog=STUDY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = study.add_subparsers(dest="study_command", metavar="COMMAND", required=True)
    add_study_subcommands(commands)
