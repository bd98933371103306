"""Calibrated proxies (issue 21): `teachset study simulate`, `study calibrate`, and teaching and
evaluating against the proxy.json it writes.

The study: sklearn digits at their own 8 px, conditions A and B of one random image per class, 30
test images. Recovery tests draw each simulated participant's answers straight from the true
proxy's probabilities (answer_tables: the tables `study simulate` answers with) and calibrate on
them; the HTTP path (consent, teaching page, quiz, test) runs once, in the test of the marks.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from teachset.cli import main
from teachset.proxy import ProxySpec, load_proxy, parse_proxy, write_proxy
from teachset.study.calibrate import CalibrateOptions, StudyAnswers, answer_tables, fit_candidates
from teachset.study.proxyfit import Answers

EXTRACTORS = ("mobilenet_v2", "alexnet", "pixels")  # the candidates' extractors (mobilenet_v2: the default)
PIXELS_PROXY = "pixels:nn:similarity=euclidean,temperature=0.3,lapse=0.1"


@pytest.fixture(scope="module")
def loop_study(tmp_path_factory):
    from teachset.data import load_dataset
    from teachset.study.create import create_study
    from teachset.teaching_set import TeachingSet

    root = tmp_path_factory.mktemp("loop-study")
    dataset = load_dataset("digits", image_size=8)
    rng = np.random.default_rng(0)
    conditions = []
    for k, name in enumerate("AB"):
        index = [int(rng.choice(np.flatnonzero(dataset.labels == c))) for c in range(dataset.num_classes)]
        folder = TeachingSet.from_selection(dataset, index, method=f"random-{name}", params={}, seed=k).save(root / f"ts-{name}")
        conditions.append((name, folder))
    return create_study("Digits loop", "digits", conditions, out=root / "study", test_images=30, seed=0)


def simulated_answers(design, spec: ProxySpec, participants: int, seed: int) -> StudyAnswers:
    """What `participants` simulated people answer to every test image (conditions alternating), drawn
    from the proxy's probabilities as `study simulate` draws them, without the HTTP round trips."""
    tables = answer_tables(spec, design)
    rng = np.random.default_rng(seed)
    pairs: dict[tuple[int, int], int] = {}
    pair, answer, who = [], [], []
    for p in range(participants):
        c = p % len(design.conditions)
        for stimulus in design.test_pool:
            probabilities = np.asarray(tables[design.conditions[c].name][stimulus.token])
            pair.append(pairs.setdefault((c, stimulus.item), len(pairs)))
            answer.append(int(rng.choice(len(probabilities), p=probabilities / probabilities.sum())))
            who.append(p)
    label = {s.item: s.label for s in design.test_pool}
    keys = list(pairs)
    answers = Answers(np.array(pair), np.array(answer), np.array(who), np.array([k[0] for k in keys]),
                      np.array([label[k[1]] for k in keys]), len(design.class_names))
    return StudyAnswers(answers, keys, [f"sim{p}" for p in range(participants)], participants, 0)


# ---- recovery ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("true, rank", [(PIXELS_PROXY, 4), ("alexnet:nn:temperature=0.03,lapse=0.1", 0)],
                         ids=["pixels-euclidean-T0.3", "alexnet-cosine-T0.03"])
def test_calibration_recovers_a_proxy_that_is_not_the_default(loop_study, true, rank):
    truth = parse_proxy(true, 8)
    found = fit_candidates(loop_study, simulated_answers(loop_study, truth, 40, seed=0),
                           CalibrateOptions(extractors=EXTRACTORS, rank=rank))
    first = found.ranked[0]
    assert found.chosen is first, found.reason
    spec = first.candidate.spec(first.params)
    assert (spec.extractor, spec.head, spec.similarity, spec.rule, spec.map) == \
        (truth.extractor, "nn", truth.similarity, truth.rule, None)
    assert abs(spec.temperature / truth.temperature - 1) < 0.3
    assert abs(spec.lapse - 0.1) < 0.05
    # it beats the default proxies and the conditions' mean accuracy, out of fold
    for baseline in found.baselines:
        assert first.log_likelihood > baseline.log_likelihood + 0.05, baseline.candidate.label
    if rank:
        assert any(s.candidate.kind == "learned" for s in found.ranked)  # the learned candidate competed and lost


def test_random_answerers_choose_the_lapse_only_model(loop_study):
    found = fit_candidates(loop_study, simulated_answers(loop_study, parse_proxy("chance"), 40, seed=1),
                           CalibrateOptions(extractors=EXTRACTORS, rank=0))
    assert found.chosen.candidate.kind == "chance"
    assert "no candidate beat chance" in found.reason
    spec = found.chosen.candidate.spec(found.chosen.params)
    assert (spec.head, spec.lapse) == ("chance", 1.0)
    with pytest.raises(Exception, match="nothing to teach against"):
        spec.teacher_space(None)


# ---- simulated participants through the HTTP API: marked, left out, then calibrated on ----------------

def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("teachset: error: ") and "\n" not in err, err
    return err


def test_simulated_participants_are_marked_left_out_and_calibrated_on(loop_study, tmp_path, serve_study, capsys):
    from teachset.study.analysis import analyze
    from teachset.study.db import Database
    from teachset.study.export import load_data
    from teachset.study.simulate import StudyClient, Participation, answer_all, oracle, run_participant, start

    import random

    study, url = str(loop_study.path), f"sqlite:///{tmp_path / 'responses.sqlite'}"
    calibrate = ["study", "calibrate", study, "--database", url, "--extractors", *EXTRACTORS, "--rank", "0",
                 "--out", str(tmp_path / "calibration")]
    assert main(["study", "simulate", study, "--participants", "3", "--proxy", PIXELS_PROXY, "--database", url]) == 0
    assert "3 simulated participants answered with pixels NN euclidean" in capsys.readouterr().out
    # too few answers: one line saying how many are needed, and that simulated ones are left out
    assert main(calibrate) == 2
    err = _one_line(capsys)
    assert "at least 5 participants and 200" in err and "has 0 participant(s) with 0" in err
    assert "3 simulated participant(s) are left out (--include-simulated" in err
    assert main([*calibrate, "--include-simulated"]) == 2
    assert "has 3 participant(s) with 90" in _one_line(capsys)

    # a person, and a browser that claims to be a simulation without the study's key: both human
    live = serve_study(loop_study, url)
    run_participant(live.url, "person-1", oracle(loop_study, 0.8, random.Random(0)), seed=0)
    forged = StudyClient(live.url, user_agent="teachset-simulate/1 (0123456789abcdef0123) forged")
    record = Participation("forger")
    answer_all(forged, start(forged, "forger", record), oracle(loop_study, 0.8, random.Random(1)), record,
               random.Random(1))
    forged.close()
    assert main(["study", "simulate", study, "--participants", "4", "--proxy", PIXELS_PROXY, "--database", url,
                 "--url", live.url, "--seed", "1"]) == 0
    capsys.readouterr()

    with Database(url) as db:
        data = load_data(db, loop_study)
        assert sorted(p["simulated"] for p in data.participants) == [0, 0, 1, 1, 1, 1, 1, 1, 1]
        assert all(p["browser"].startswith("teachset-simulate/1 (") for p in data.participants if p["simulated"])
        assert all(t["simulated"] == 1 for t in data.trials if t["participant"] in
                   {p["participant"] for p in data.participants if p["simulated"]})
        assert {p["simulated"] for p in data.participants if "forged" in p["browser"]} == {0}
        summary = analyze(loop_study, db, tmp_path / "analysis", proxy=False)
        assert summary["participants_included"] == 2 and "7 simulated participants left out" in summary["included"]
        assert "7 simulated participants left out" in (tmp_path / "analysis" / "report.html").read_text()
        header = (tmp_path / "analysis" / "participants.csv").read_text().splitlines()[0].split(",")
        assert "simulated" in header and "simulated" in (tmp_path / "analysis" / "trials.csv").read_text().splitlines()[0]
        assert analyze(loop_study, db, tmp_path / "with", proxy=False, include_simulated=True)["participants_included"] == 9

    # 7 simulated and 2 people: enough to calibrate on with --include-simulated
    assert main([*calibrate, "--include-simulated"]) == 0
    out = capsys.readouterr().out
    assert "270 answers of 9 participants (7 simulated)" in out and "chosen:" in out
    found = json.loads((tmp_path / "calibration" / "proxy.json").read_text())
    assert found["format"] == "teachset.proxy/1" and found["simulated_participants"] == 7
    assert found["answers"] == 270 and found["candidates"][0]["rank"] == 1
    assert {"each condition's mean accuracy", "default LC", "default NN"} <= set(found["baselines"])
    assert set(found["gain_over_default"]) >= {"baseline", "log_likelihood", "likelihood_ratio_per_answer", "accuracy"}
    for name in ("report.html", "candidates.csv", "images.csv", "fig_images.png"):
        assert (tmp_path / "calibration" / name).is_file(), name
    report = (tmp_path / "calibration" / "report.html").read_text()
    assert "7 of the participants are simulated" in report and "The chosen proxy against the baselines" in report
    assert len((tmp_path / "calibration" / "images.csv").read_text().splitlines()) == 1 + 60
    load_proxy(tmp_path / "calibration")  # what calibrate writes, load_proxy reads


# ---- teaching and evaluating against a calibrated proxy ----------------------------------------------

def test_a_teaching_set_made_against_a_proxy_carries_it(tmp_path, capsys):
    from teachset.data import load_dataset
    from teachset.data.splits import Split
    from teachset.evaluate import PROXY, Evaluator, held_out_index, student_label
    from teachset.methods import TeachingData
    from teachset.teaching_set import TeachingSet

    scores = {"log_likelihood": -0.55, "accuracy": 0.8, "chance_log_likelihood": -2.303}
    path = write_proxy(tmp_path / "calib", parse_proxy(PIXELS_PROXY, 8), {"scores": scores})
    out = tmp_path / "taught"
    assert main(["teach", "digits", "--size", "8", "--space", "pixels", "--extractor", "pixels", "--per-class", "1",
                 "--epochs", "2", "--proxy", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    ts = TeachingSet.load(out)
    recorded = ts.params["proxy"]
    assert recorded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert recorded["file"] == str(path.resolve()) and recorded["scores"] == scores
    assert (recorded["extractor"], recorded["similarity"], recorded["temperature"], recorded["lapse"]) == \
        ("pixels", "euclidean", 0.3, 0.1)
    assert (ts.params["student"], ts.params["similarity"], ts.params["temperature"]) == ("nn", "euclidean", 0.3)

    # the evaluation's row "proxy": the accuracy it predicts people reach, on the test part, in its own space
    data = TeachingData.load(load_dataset("digits", image_size=8), "mobilenet_v2", None, progress=False)
    _, test = data.split(Split.from_record(ts.dataset.get("split")))
    rows = Evaluator(test, students={"lc": {}, "nn": {}, PROXY + str(path): {}}).evaluate(ts, repeats=1)
    proxy_rows = [r for r in rows if r["student"] == "proxy"]
    assert len(proxy_rows) == 1 and proxy_rows[0]["own"] and proxy_rows[0]["extractor"] == "pixels"
    assert {r["student"] for r in rows} == {"proxy", "lc", "nn"} and student_label("proxy", "pixels", "x") == \
        "humans, predicted (pixels)"
    index = held_out_index(ts, test.dataset)
    images = test.dataset.tensor(index).flatten(1).numpy()
    expected = load_proxy(path).predicted_accuracy(ts.tensor().flatten(1).numpy(), ts.labels, images,
                                                   test.dataset.labels[index], 10)
    assert proxy_rows[0]["accuracy"] == pytest.approx(expected, rel=1e-5)
    assert 0.1 < expected < 1


def test_a_learned_map_round_trips_and_teaches_through_its_extractor(tmp_path, digits16):
    import torch

    from teachset.methods import TeachingData

    rng = np.random.default_rng(0)
    d = 256  # pixels of a 16 px image
    found = {"mean": rng.normal(size=d), "w_in": rng.normal(size=(d, 2)) / 10, "w_out": rng.normal(size=(d, 2)) / 10}
    spec = ProxySpec(extractor="pixels", head="nn", temperature=0.5, lapse=0.05, map=found)
    path = write_proxy(tmp_path, spec, {"scores": None})
    assert json.loads(path.read_text())["proxy"]["map"] == "proxy_map.npz"
    loaded = load_proxy(path)
    assert loaded.rank == 2 and "learned rank-2 map" in loaded.name
    for key in found:
        np.testing.assert_allclose(loaded.map[key], found[key])
    data = TeachingData.load(digits16, "pixels", None, progress=False)
    networks, features = loaded.teacher_space(data)
    images = digits16.tensor(np.arange(5))
    with torch.no_grad():
        mapped = networks[0](images).numpy()
    np.testing.assert_allclose(mapped, loaded.mapped(images.flatten(1).numpy()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(features[0][:5], mapped, rtol=1e-4, atol=1e-4)
    (tmp_path / "proxy_map.npz").unlink()
    with pytest.raises(Exception, match="map .* cannot be read"):
        load_proxy(path)


# ---- bad input: one line --------------------------------------------------------------------------------

GOOD = {"extractor": "pixels", "head": "nn", "similarity": "euclidean", "rule": "logsumexp", "temperature": 0.3,
        "lapse": 0.1, "l2": 0.001, "input_size": None, "map": None}


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read; give the proxy.json"),
    ("{not json", "is not valid JSON"),
    (json.dumps({"format": "teachset.proxy/9", "proxy": GOOD}), "is not a calibrated proxy"),
    (json.dumps({"format": "teachset.proxy/1"}), 'no "proxy" object'),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "temperture": 1}}), "unknown parameter 'temperture'"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "temperature": "hot"}}), "temperature is 'hot', not"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "temperature": -1}}), "must be above 0"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "lapse": 1.5}}), "at most 1"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "head": "knn"}}), "must be one of nn, lc, chance"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "extractor": "resnet9"}}), "'resnet9' is not one of"),
    (json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "map": "proxy_map.npz"}}), "map .* cannot be read"),
], ids=["missing", "not-json", "format", "no-proxy", "unknown-name", "type", "range", "lapse", "head", "extractor", "map"])
def test_a_bad_proxy_json_is_one_line(tmp_path, capsys, content, message):
    import re

    path = tmp_path / "proxy.json"
    if content is not None:
        path.write_text(content)
    assert main(["teach", "digits", "--size", "8", "--space", "pixels", "--proxy", str(path)]) == 2
    err = _one_line(capsys)
    assert re.search(message, err), err


@pytest.mark.parametrize("text, message", [("resnet9:nn", "is neither a proxy.json nor EXTRACTOR:HEAD"),
                                           ("pixels:nn:temp=0.3", "'temp=0.3' is not NAME=VALUE"),
                                           ("pixels:nn:temperature=0", "must be above 0")])
def test_a_bad_proxy_text_is_one_line(loop_study, capsys, text, message):
    assert main(["study", "simulate", str(loop_study.path), "--participants", "1", "--proxy", text]) == 2
    assert message in _one_line(capsys)


def test_an_experiment_file_scores_every_set_by_its_proxy(tmp_path):
    from teachset.errors import TeachsetError
    from teachset.experiments.spec import load_experiment

    path = write_proxy(tmp_path / "calib", parse_proxy(PIXELS_PROXY, 8), {"scores": None})
    toml = tmp_path / "experiment.toml"
    toml.write_text('proxy = "calib/proxy.json"\n[[datasets]]\nsource = "digits"\nsize = 8\n[[methods]]\nname = "random"\n')
    assert load_experiment(toml).students[-1] == f"proxy:{path.resolve()}"
    toml.write_text('proxy = "calib/missing.json"\n[[datasets]]\nsource = "digits"\n[[methods]]\nname = "random"\n')
    with pytest.raises(TeachsetError, match="cannot be read") as error:
        load_experiment(toml)
    assert "\n" not in str(error.value)


def test_evaluate_refuses_a_bad_proxy_before_computing_anything(loop_study, tmp_path, capsys):
    (tmp_path / "proxy.json").write_text(json.dumps({"format": "teachset.proxy/1", "proxy": {**GOOD, "rule": "min"}}))
    assert main(["evaluate", str(loop_study.path.parent / "ts-A"), "--proxy", str(tmp_path / "proxy.json"),
                 "--out", str(tmp_path)]) == 2
    assert "'rule' must be one of logsumexp, max, mean" in _one_line(capsys)
    assert not list(tmp_path.glob("0*"))  # no results folder
