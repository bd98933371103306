"""`teachset study calibrate | simulate`: which proxy predicts a study's participants (study/calibrate.py),
and simulated participants who answer with a known proxy (study/simulate.py). Registered by cli/study.py."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from ..errors import OptionError
from ..study.calibrate import CalibrateOptions
from ..study.design import DATABASE_ENV
from .common import add_options, options_from

CALIBRATE_EPILOG = f"""\
For every candidate proxy (each extractor whose weights are here x LC, NN with each similarity and
rule, each with a fitted temperature and lapse; and a learned low-rank map of the best extractor's
features), the probability it gives to each test answer a participant gave after the teaching set
they saw, fitted on some participants and scored on the others. Writes STUDY/calibration/proxy.json
(the chosen proxy, its parameters and held-out scores) and report.html (the candidates ranked, the
gain over the default proxies, per image the participants' accuracy against the prediction).
Then teach against it: teachset teach DATASET --generator G --proxy STUDY/calibration/proxy.json

examples:
  teachset study calibrate studies/Solar_cells
  teachset study calibrate studies/Solar_cells --extractors mobilenet_v2 alexnet --folds 10 --out calib
  {DATABASE_ENV}=postgresql://study@db.internal/study teachset study calibrate studies/Solar_cells
  teachset study calibrate studies/pilot --include-simulated     # a study filled by `study simulate`
"""

SIMULATE_EPILOG = """\
Each simulated participant goes through the study as a person does, over its HTTP API: consent,
instructions, the teaching page (which tells it its condition), the quiz and the test, attention
checks included, answering each image with the probabilities of the proxy after its condition's
teaching set, and at random with probability --lapse (a check is answered right unless it lapses).
Without --url the study is served on a free local port for the run, on the study's database (or
--database). Simulated sessions are marked in the database (a mark keyed with the study's secret):
the exports say so and `study analyze` and `study calibrate` leave them out unless
--include-simulated.

A proxy is a proxy.json, `chance`, or EXTRACTOR:HEAD[:name=value,...] with HEAD nn or lc and names
similarity (cosine, euclidean), rule (logsumexp, max, mean), temperature, lapse, l2, input_size.
The temperature divides the head's class scores: cosine similarities lie in [-1, 1] and differ little
between classes, so about 0.01-0.05 gives confident answers (0.3 answers close to chance with ten
classes); squared Euclidean distances depend on the extractor's scale.

examples:
  teachset study simulate studies/pilot --participants 40 --proxy alexnet:nn:temperature=0.03 --lapse 0.1
  teachset study simulate studies/pilot --participants 20 --proxy chance
  teachset study simulate studies/pilot --participants 40 --proxy studies/pilot/calibration/proxy.json
  teachset study simulate studies/pilot --participants 10 --proxy vgg16:lc --url http://127.0.0.1:8000
"""


def run_calibrate(args: argparse.Namespace) -> None:
    from ..study.calibrate import calibrate
    from ..study.db import Database
    from ..study.design import load_study

    design = load_study(args.study)
    with Database(design.database_url(args.database)) as db:
        found = calibrate(design, db, args.out, options_from(args, CalibrateOptions),
                          progress=lambda text: print(text, file=sys.stderr))
    gain = found["gain_over_default"]
    print(f"{found['answers']} answers of {found['participants']} participants"
          + (f" ({found['simulated_participants']} simulated)" if found["simulated_participants"] else ""))
    for row in found["candidates"][:5]:
        print(f"  {row['rank']:>2}. {row['label']}: log-likelihood {row['log_likelihood']:.3f} per answer, "
              f"answers predicted {row['accuracy']:.3f}" + (" (chosen)" if row["chosen"] else ""))
    print(f"chosen: {found['name']}\n  {found['reason']}")
    print(f"against the default proxy ({gain['baseline']}): {gain['log_likelihood']:+.3f} log-likelihood per answer "
          f"(x{gain['likelihood_ratio_per_answer']:.2f}), {gain['accuracy']:+.3f} answers predicted")
    out = design.path / "calibration" if args.out is None else args.out
    print(f"proxy: {out}/proxy.json\nreport: {out}/report.html")


def run_simulate(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from ..proxy import parse_proxy
    from ..study.calibrate import answer_tables
    from ..study.design import load_study
    from ..study.simulate import simulate_participants

    if args.participants < 1:
        raise OptionError("participants", "{option} must be at least 1")
    design = load_study(args.study)
    spec = parse_proxy(args.proxy, design.dataset["spec"]["image_size"])
    if args.lapse is not None:
        spec = replace(spec, lapse=args.lapse)
    tables = answer_tables(spec, design)

    def simulate(url: str):
        return simulate_participants(design, url, args.participants, tables, spec.lapse, seed=args.seed, what=spec.name)

    if args.url:
        found = simulate(args.url)
    else:
        with served(design, design.database_url(args.database)) as url:
            found = simulate(url)
    conditions = ", ".join(f"{name} {n}" for name, n in found.conditions.items())
    print(f"{args.participants} simulated participants answered with {spec.name} ({conditions}): {found.completed} "
          f"completed, {found.screened_out} screened out")
    print("they are marked simulated: `study analyze` and `study calibrate` leave them out unless --include-simulated")


@contextmanager
def served(design, database_url: str):
    """The study's app on a free loopback port in a thread (uvicorn), for as long as the block runs; yields its URL."""
    import threading
    import time

    import uvicorn

    from ..study.app import create_app
    from ..study.db import Database
    from ..study.server import bind

    db = Database(database_url)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(design, db), log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the study server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        db.close()


def add_loop_subcommands(subparsers) -> None:
    """Register calibrate and simulate on the `study` group's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    calibrate = subparsers.add_parser("calibrate", help="which proxy student predicts the participants: proxy.json and "
                                      "a report", description="Calibrate proxy students on a study's answers.",
                                      epilog=CALIBRATE_EPILOG, formatter_class=raw)
    calibrate.add_argument("study", help="the study folder")
    calibrate.add_argument("--database", help=f"database URL (default ${DATABASE_ENV}, else STUDY/responses.sqlite)")
    calibrate.add_argument("--out", help="output folder (default STUDY/calibration)")
    add_options(calibrate, CalibrateOptions)
    calibrate.set_defaults(func=run_calibrate)

    simulate = subparsers.add_parser("simulate", help="simulated participants who answer with a known proxy",
                                     description="Simulated participants, through the study's HTTP API.",
                                     epilog=SIMULATE_EPILOG, formatter_class=raw)
    simulate.add_argument("study", help="the study folder")
    simulate.add_argument("--participants", type=int, required=True, help="how many simulated participants")
    simulate.add_argument("--proxy", required=True, help="what they answer with: a proxy.json, chance, or "
                          "EXTRACTOR:HEAD[:name=value,...]")
    simulate.add_argument("--lapse", type=float, default=None, help="the share of answers given at random (default: "
                          "the proxy's own)")
    simulate.add_argument("--seed", type=int, default=0, help="seeds the answers and response times")
    simulate.add_argument("--url", help="a running server of the study (default: serve it locally for the run)")
    simulate.add_argument("--database", help=f"without --url: database URL (default ${DATABASE_ENV}, else "
                          "STUDY/responses.sqlite)")
    simulate.set_defaults(func=run_simulate)
