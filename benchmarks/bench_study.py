"""Study server benchmark: 50 simulated participants at once against `teachset study serve` (a real
process on loopback), on SQLite and on PostgreSQL (a throwaway local server). Prints requests per
second and answer latency percentiles; then saves screenshots of the teaching and trial pages
taken in headless Chromium (if installed).

    .venv/bin/python benchmarks/bench_study.py [--participants 50] [--test-images 30]
        [--databases sqlite,postgresql] [--screenshots runs/study-bench]

The study: sklearn digits at 16 px, two conditions of two teaching images per class. Each
participant: open the link, consent, leave the teaching page, answer the 20 quiz trials and the
--test-images test trials as fast as the server replies, fetch the end page (the default settings:
no attention checks; breaks are the page's own and cost the server nothing). The clients run on
the same machine (and cores) as the server, so the figures are a lower bound for the server.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from teachset.study.db import Database, sessions
from teachset.study.create import create_study
from teachset.study.design import StudyDesign
from teachset.study.simulate import oracle, run_participant
from teachset.study.testing import LocalPostgres, postgres_bin, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIME_LIMIT_S = 90


def make_study(root: Path, test_images: int) -> StudyDesign:
    from teachset.data import load_dataset
    from teachset.teaching_set import TeachingSet

    dataset = load_dataset("digits", image_size=16)
    rng = np.random.default_rng(0)
    conditions = []
    for name in ("A", "B"):
        index = [int(i) for c in range(dataset.num_classes)
                 for i in rng.choice(np.flatnonzero(dataset.labels == c), 2, replace=False)]
        folder = TeachingSet.from_selection(dataset, index, method="random", params={}, seed=0).save(root / f"ts-{name}")
        conditions.append((name, folder))
    return create_study("Benchmark", "digits", conditions, out=root / "study", test_images=test_images, seed=0)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_round(design: StudyDesign, url: str, participants: int, prefix: str) -> dict:
    """`participants` at once (a barrier), each a whole participation; returns the figures."""
    barrier = threading.Barrier(participants, timeout=60)
    records, failures = [], []

    def participate(i: int) -> None:
        try:
            barrier.wait()
            records.append(run_participant(url, f"{prefix}{i:03d}", oracle(design, 0.8, random.Random(i)), seed=i,
                                           timeout=30))
        except Exception as error:  # counted and shown
            failures.append(repr(error))

    threads = [threading.Thread(target=participate, args=(i,)) for i in range(participants)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, TIME_LIMIT_S - (time.perf_counter() - began)))
    wall = time.perf_counter() - began
    latencies = [s * 1000 for r in records for s in r.latencies_s]
    return {
        "completed": sum(r.completion_code is not None for r in records), "failures": failures,
        "wall_s": wall, "requests": sum(r.requests for r in records), "answers": len(latencies),
        "p50": percentile(latencies, 50), "p90": percentile(latencies, 90), "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")), "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def bench(design: StudyDesign, database_url: str, participants: int) -> dict:
    server = start_server(design.path, database_url)
    try:
        load_round(design, server.url, 5, "warm")  # connections, caches, JIT-free warm-up
        figures = load_round(design, server.url, participants, "bench")
    finally:
        server.stop()
    with Database(database_url) as db, db.read() as conn:
        counts = Counter(row.condition for row in conn.execute(sessions.select().where(sessions.c.completed_at.is_not(None))))
    figures["conditions"] = dict(sorted(counts.items()))
    return figures


def screenshots(design: StudyDesign, database_url: str, folder: Path) -> list[Path]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("screenshots skipped: the playwright package is not installed")
        return []
    if not os.access(CHROMIUM, os.X_OK):
        print(f"screenshots skipped: {CHROMIUM} is not installed (scripts/study_system_deps.sh)")
        return []
    folder.mkdir(parents=True, exist_ok=True)
    server = start_server(design.path, database_url)
    saved = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for device, options in (("desktop", {"viewport": {"width": 1280, "height": 800}}),
                                    ("phone", {k: v for k, v in playwright.devices["Pixel 5"].items()
                                               if k != "default_browser_type"})):
                context = browser.new_context(**options)
                page = context.new_page()
                page.goto(f"{server.url}/?participant=screenshot-{device}")
                page.check("input[name=consent]")
                page.click("#start")
                page.wait_for_url("**/instructions")
                saved.append(folder / f"instructions_page_{device}.png")
                page.screenshot(path=str(saved[-1]), full_page=True)
                page.click("#continue")
                page.wait_for_url("**/teach")
                page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
                saved.append(folder / f"teaching_page_{device}.png")
                page.screenshot(path=str(saved[-1]), full_page=True)
                page.click("#start-quiz")
                page.click("#intro-continue")
                page.wait_for_selector("#stimulus.loaded")
                saved.append(folder / f"trial_page_{device}.png")
                page.screenshot(path=str(saved[-1]), full_page=True)
                context.close()
            browser.close()
    finally:
        server.stop()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--test-images", type=int, default=30)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--screenshots", default="runs/study-bench", help="folder for the page screenshots ('' to skip)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; clients and server share them; Python {sys.version.split()[0]}")

    with tempfile.TemporaryDirectory(prefix="teachset-bench-") as tmp:
        design = make_study(Path(tmp), args.test_images)
        per = len(design.conditions[0].quiz) + design.test_count
        print(f"{args.participants} participants at once, {per} answers each "
              f"({len(design.conditions[0].quiz)} quiz + {design.test_count} test), 2 conditions\n")
        rows = []
        for name in args.databases.split(","):
            if name == "sqlite":
                rows.append(("SQLite (WAL, synchronous=FULL)", bench(design, f"sqlite:///{tmp}/bench.sqlite", args.participants)))
            elif name == "postgresql":
                if postgres_bin() is None:
                    print("PostgreSQL skipped: not installed (scripts/study_system_deps.sh)")
                    continue
                with LocalPostgres() as cluster_url:
                    rows.append(("PostgreSQL 15 (local, fsync on)", bench(design, f"{cluster_url}/postgres", args.participants)))
            else:
                parser.error(f"unknown database '{name}'; use sqlite and/or postgresql")

        print("| database | completed | requests | wall s | requests/s | answers/s | answer p50 ms | p90 ms | p99 ms | max ms | completed per condition (incl. 5 warm-up) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, f in rows:
            print(f"| {label} | {f['completed']}/{args.participants} | {f['requests']} | {f['wall_s']:.2f} | "
                  f"{f['requests'] / f['wall_s']:.0f} | {f['answers'] / f['wall_s']:.0f} | {f['p50']:.1f} | {f['p90']:.1f} | "
                  f"{f['p99']:.1f} | {f['max']:.1f} | {f['conditions']} |")
            for failure in f["failures"][:3]:
                print(f"  failure: {failure}")

        if args.screenshots:
            saved = screenshots(design, f"sqlite:///{tmp}/shots.sqlite", Path(args.screenshots))
            for path in saved:
                print(f"screenshot: {path}")


if __name__ == "__main__":
    main()
