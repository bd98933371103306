"""Experiments: experiment files checked whole, a results store that survives SIGKILL, and the
pool and Ray executors giving the same numbers."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from teachset.cli import main
from teachset.errors import TeachsetError
from teachset.experiments import Store, load_experiment, run_grid

GRID = """
name = "tiny"
seeds = {seeds}
per_class = 2
extractors = ["pixels"]
transfer = []
realism = "pixels"

[[datasets]]
source = "digits"
size = 8

[[methods]]
name = "random"

[[methods]]
name = "forgetting"
epochs = {epochs}

[[methods]]
name = "kcenters"
"""


def write(tmp_path, text, name="experiment.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows_of(run_dir):
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        return sorted(db.execute("SELECT cell, student, eval_extractor, accuracy FROM rows").fetchall())


@pytest.mark.parametrize("text,says", [
    ('nmae = "x"\n[[datasets]]\nsource = "digits"\n[[methods]]\nname = "random"\n', "unknown key 'nmae'"),
    ('[[datasets]]\nsource = "nowhere"\n[[methods]]\nname = "random"\n', "'nowhere' is neither a bundled dataset"),
    ('[[datasets]]\nsource = "digits"\n[[methods]]\nname = "coreset"\n', "unknown method 'coreset'"),
    ('[[datasets]]\nsource = "digits"\n[[methods]]\nname = "forgetting"\ndepth = 3\n', "no parameter 'depth'"),
    ('[[datasets]]\nsource = "digits"\n[[methods]]\nname = "latent"\n', "the latent teacher needs a generator"),
    ('[[datasets]]\nsource = "digits"\nsize = 8\nsizes = 9\n[[methods]]\nname = "random"\n', "unknown key 'sizes'"),
    ('seeds = "many"\n[[datasets]]\nsource = "digits"\n[[methods]]\nname = "random"\n', "seeds: give a whole number"),
    ('[[datasets]\nsource = "digits"\n', "not valid TOML"),
])
def test_bad_experiment_files_get_one_line_naming_the_problem(tmp_path, text, says, capsys):
    path = write(tmp_path, text)
    with pytest.raises(TeachsetError, match=says) as info:
        load_experiment(path)
    assert "\n" not in str(info.value)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert says.split("'")[0] in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_grid_killed_mid_run_resumes_to_the_same_rows(tmp_path):
    experiment = write(tmp_path, GRID.format(seeds=4, epochs=5))
    whole = tmp_path / "whole"
    run_grid(load_experiment(experiment), whole, progress=False).close()
    expected = rows_of(whole)
    assert len(expected) == 3 * 4 * 2 and len({r[:3] for r in expected}) == len(expected)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "teachset", "run", str(experiment), "--out", str(tmp_path / "runs")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once some cells, but not all, are stored
        stores = list((tmp_path / "runs").glob("*/results.sqlite"))
        if stores:
            try:
                with sqlite3.connect(stores[0], timeout=30) as db:
                    done = db.execute("SELECT count(*) FROM cells").fetchone()[0]
            except sqlite3.OperationalError:  # the file is there, its tables not yet
                done = 0
            if 3 <= done:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (run,) = (tmp_path / "runs").iterdir()
    partial = rows_of(run)
    assert 0 < len(partial) < len(expected)
    assert main(["run", "--resume", str(run)]) == 0
    assert rows_of(run) == expected  # one row per (cell, student, extractor), the same numbers
    report = (run / "report.html").read_text()
    assert report.count("data:image/png;base64") == 3 * 2 * 10


def test_resuming_with_a_changed_experiment_is_refused(tmp_path, capsys):
    experiment = write(tmp_path, GRID.format(seeds=1, epochs=2))
    assert main(["run", str(experiment), "--out", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    changed = write(tmp_path, GRID.format(seeds=2, epochs=2), "changed.toml")
    assert main(["run", str(changed), "--resume", str(run)]) == 2
    assert "changed: seeds" in capsys.readouterr().err
    store = Store(run)
    assert len(store.cells()) == 3
    store.close()


@pytest.fixture(scope="module")
def local_ray():
    """One local 2-worker Ray cluster for the tests of this module (its workers keep their imports)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_pool_and_ray_executors_give_the_same_numbers(tmp_path, local_ray):
    experiment = load_experiment(write(tmp_path, GRID.format(seeds=2, epochs=5)))
    results = {}
    for executor in ("pool", "ray"):
        run_grid(experiment, tmp_path / executor, workers=2, executor=executor, progress=False).close()
        results[executor] = rows_of(tmp_path / executor)
    assert results["pool"] == results["ray"] and len(results["pool"]) == 3 * 2 * 2


def test_features_in_shards_on_ray_equal_one_process(tmp_path, local_ray):
    import numpy as np

    from teachset.data import load_dataset
    from teachset.experiments.features import sharded_features
    from teachset.features import dataset_features
    from teachset.features.cache import cached_features

    dataset = load_dataset("digits", image_size=16, classes="0,1")
    whole = dataset_features(dataset, "alexnet", 64, progress=False, use_cache=False)
    cached_features(dataset, "alexnet", 64)[0].unlink(missing_ok=True)  # a cold cache: the shards compute
    sharded = sharded_features(dataset, "alexnet", 64, workers=2, executor="ray", shard_size=100)
    np.testing.assert_allclose(sharded, whole, atol=1e-5)
    assert np.array_equal(dataset_features(dataset, "alexnet", 64, progress=False), sharded)  # the same cache file


def test_feature_warm_up_covers_the_teachers_extractors(monkeypatch):
    from teachset.defaults import network_input_size
    from teachset.experiments import build_experiment
    from teachset.experiments.engine import warm_features
    from teachset.features import cache

    experiment = build_experiment({"name": "warm", "seeds": 1, "extractors": ["pixels"], "transfer": [], "realism": "pixels",
                                   "datasets": [{"source": "digits", "size": 8, "generator": "train"}],
                                   "methods": [{"name": "random"}, {"name": "latent", "extractors": ["alexnet"]}]})
    computed = []
    monkeypatch.setattr(cache, "dataset_features", lambda dataset, name, size, progress: computed.append((name, size)))
    warm_features(experiment, experiment.cells(), progress=False)
    expected = {("pixels", None), ("pixels", network_input_size("pixels", 8)), ("alexnet", network_input_size("alexnet", 8))}
    assert len(computed) == len(set(computed)) and set(computed) == expected  # each space once, the teacher's included
