"""Fixtures of the study tests: tiny studies, both databases, live servers.

- `digits_study`: 10 classes (sklearn digits at 16 px), conditions A and B of one image per class,
  4 test images: 10 quiz + 4 test trials per participant.
- `pair_study`: 2 classes, 2 teaching images per class, 4 test images (the browser test).
- `checks_study`: digits as a Prolific study with 2 attention checks and a screen-out path;
  `prolific_study`: the same features on pair_study, with own texts (the Prolific browser test).
- `database_url`: each test that takes it runs twice, on an SQLite file and on a fresh database
  of a real PostgreSQL server that the session starts on loopback (skipped only where PostgreSQL
  is not installed, and never under CI=true: there it must run).
- `live`: the app served by uvicorn in a thread; `server_process`: `python -m teachset.study serve`
  as a real process (load and crash tests).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from teachset.study.db import Database
from teachset.study.create import create_study
from teachset.study.design import StudyDesign
from teachset.study.simulate import StudyClient
from teachset.study.testing import LocalPostgres, ServerProcess, postgres_bin, start_server


def _teaching_sets(dataset, root: Path, per_class: int, names: list[str]) -> list[tuple[str, Path]]:
    from teachset.teaching_set import TeachingSet

    rng = np.random.default_rng(0)
    out = []
    for k, name in enumerate(names):
        index = [int(i) for c in range(dataset.num_classes)
                 for i in rng.choice(np.flatnonzero(dataset.labels == c), per_class, replace=False)]
        folder = TeachingSet.from_selection(dataset, index, method=f"random-{name}", params={}, seed=k).save(root / f"ts-{name}")
        out.append((name, folder))
    return out


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory) -> StudyDesign:
    from teachset.data import load_dataset

    root = tmp_path_factory.mktemp("digits-study")
    dataset = load_dataset("digits", image_size=16)
    conditions = _teaching_sets(dataset, root, per_class=1, names=["A", "B"])
    return create_study("Digits <test>", "digits", conditions, out=root / "study", test_images=4, seed=0)


@pytest.fixture(scope="session")
def pair_study(tmp_path_factory) -> StudyDesign:
    """Zeros and ones of sklearn digits as a class-folder dataset, 32 px."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from teachset.data import load_dataset
    from teachset.imaging import to_uint8

    root = tmp_path_factory.mktemp("pair-study")
    digits = load_digits()
    for label, name in ((0, "zero"), (1, "one")):
        folder = root / "data" / name
        folder.mkdir(parents=True)
        for i in np.flatnonzero(digits.target == label)[:20]:
            Image.fromarray(to_uint8(digits.images[i] / 16)).save(folder / f"{i:04d}.png")
    dataset = load_dataset(str(root / "data"), image_size=32)
    conditions = _teaching_sets(dataset, root, per_class=2, names=["A"])
    return create_study("Zeros and ones", str(root / "data"), conditions, out=root / "study", test_images=4, seed=1)


@pytest.fixture(scope="session")
def checks_study(digits_study, tmp_path_factory) -> StudyDesign:
    """A Prolific study on digits: 6 test images and 2 instructed checks; 2 failed checks screen out."""
    return create_study("Checks", "digits", [(c.name, digits_study.path / c.folder) for c in digits_study.conditions],
                        out=tmp_path_factory.mktemp("checks") / "study", test_images=6, seed=5, prolific=True,
                        completion_code="C0MPL3T3", attention_checks=2, screen_out_after=2, screen_out_code="SCR33N",
                        break_every=3)


@pytest.fixture(scope="session")
def prolific_study(pair_study, tmp_path_factory) -> StudyDesign:
    """pair_study's teaching set as a Prolific study for the browser: own texts and class names, 6 test
    images, 2 instructed checks (2 failed end it), a break every 3 test trials, a completion code."""
    root = tmp_path_factory.mktemp("prolific-study")
    texts = root / "texts.md"
    texts.write_text("# Instructions\n\n## Before you start\n\nYou will sort **{test_trials}** images of {classes}.\n\n"
                     "# Debrief\n\nThis study compares *teaching sets*. Thank you!\n\n# Classes\n\n- zero: Zero (0)\n"
                     "- one: One (1)\n")
    return create_study("Zeros and ones", pair_study.dataset["spec"]["source"],
                        [("A", pair_study.path / pair_study.conditions[0].folder)], out=root / "study", texts=texts,
                        test_images=6, seed=2, prolific=True, completion_code="C0MPL3T3", screen_out_code="SCR33N",
                        attention_checks=2, screen_out_after=2, break_every=3)


# ---- PostgreSQL --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres() -> LocalPostgres:
    """A PostgreSQL server on 127.0.0.1 for this test session."""
    if postgres_bin() is None:
        message = "PostgreSQL is not installed: run scripts/study_system_deps.sh (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; under CI the PostgreSQL suite must run")
        pytest.skip(message)
    cluster = LocalPostgres()
    with cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'responses.sqlite'}"
        return
    cluster: LocalPostgres = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield cluster.create_database(name)
    finally:
        cluster.drop_database(name)


# ---- servers -------------------------------------------------------------------------------------

@dataclass
class Live:
    url: str
    design: StudyDesign
    db: Database

    def client(self) -> StudyClient:
        return StudyClient(self.url)


def serve_in_thread(design: StudyDesign, database_url: str):
    """Start uvicorn in a thread on a free loopback port; returns (Live, stop)."""
    import uvicorn

    from teachset.study.app import create_app
    from teachset.study.server import bind

    db = Database(database_url)
    app = create_app(design, db)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-thread study server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        db.close()

    return Live(f"http://127.0.0.1:{sock.getsockname()[1]}", design, db), stop


@pytest.fixture
def serve_study():
    """serve_study(design, database_url) -> Live: an in-thread server, stopped after the test."""
    stops = []

    def serve(design: StudyDesign, database_url: str) -> Live:
        server, stop = serve_in_thread(design, database_url)
        stops.append(stop)
        return server

    yield serve
    for stop in stops:
        stop()


@pytest.fixture
def live(digits_study, database_url, serve_study) -> Live:
    return serve_study(digits_study, database_url)


@pytest.fixture
def server_process():
    started: list[ServerProcess] = []

    def start(study: Path, database_url: str, threads: int = 16) -> ServerProcess:
        server = start_server(study, database_url, threads)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
