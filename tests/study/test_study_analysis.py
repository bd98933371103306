"""`study analyze`: statistics against references, and the outputs of a real (simulated) study."""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sqlalchemy import select

from teachset.study.analysis import analyze
from teachset.study.db import Database, sessions
from teachset.study.identity import ParticipantId
from teachset.study.simulate import Participation, answer_all, oracle, start
from teachset.study.stats import holm, mean_interval, permutation_test, wilson_interval


def test_wilson_interval_matches_the_textbook():
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval_matches_scipy():
    values = [0.5, 0.7, 0.65, 0.8, 0.6]
    mean, low, high = mean_interval(values)
    expected = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and (low, high) == pytest.approx(expected)


def test_permutation_test_agrees_with_scipy():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(0.6, 0.1, 12), rng.normal(0.75, 0.1, 12), rng.normal(0.6, 0.1, 10)
    two = permutation_test([a, b], 4000, seed=0)
    reference = scipy_stats.permutation_test((a, b), lambda x, y: abs(x.mean() - y.mean()), n_resamples=4000,
                                             random_state=0, alternative="greater").pvalue
    assert two["p_value"] == pytest.approx(reference, abs=0.02)
    three = permutation_test([a, b, c], 4000, seed=0)
    assert three["statistic"] == pytest.approx(scipy_stats.f_oneway(a, b, c).statistic)
    assert three["p_value"] == pytest.approx(scipy_stats.f_oneway(a, b, c).pvalue, abs=0.02)
    same = permutation_test([a, a.copy()], 1000, seed=0)
    assert same["p_value"] > 0.9
    assert math.isnan(permutation_test([a, []], 100, seed=0)["p_value"])


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.slow
def test_analysis_of_a_simulated_study(live, tmp_path):
    """Condition A's simulated participants answer right 90% of the time, B's 30%; the analysis finds it."""
    design = live.design
    key = design.secrets()["participant_key"]
    for i in range(12):
        pid = f"an{i:02d}"
        client, record = live.client(), Participation(pid)
        state = start(client, pid, record)
        with live.db.read() as conn:
            condition = conn.execute(select(sessions.c.condition).where(
                sessions.c.participant_hash == ParticipantId("url", pid).hashed(key))).scalar_one()
        choose = oracle(design, {"A": 0.9, "B": 0.3}[condition], random.Random(i))
        assert answer_all(client, state, choose, record, random.Random(i))["phase"] == "done"
        client.close()
    partial = live.client()  # one participant who stops after the quiz
    answer_all(partial, start(partial, "partial", Participation("p")), lambda s: 0, Participation("p"),
               random.Random(0), max_answers=10)

    summary = analyze(design, live.db, tmp_path / "analysis", extractor="pixels", repeats=2, seed=0, permutations=2000)
    out = tmp_path / "analysis"
    for name in ("report.html", "trials.csv", "participants.csv", "events.csv", "data_dictionary.csv",
                 "conditions.csv", "learning_curve.csv", "analysis.json", "fig_accuracy.png", "fig_learning_curve.png"):
        assert (out / name).is_file(), name
    rows = {r["condition"]: r for r in summary["conditions"]}
    assert summary["participants_included"] == 12 and summary["participants_total"] == 13
    assert rows["A"]["participants"] == rows["B"]["participants"] == 6
    assert rows["A"]["accuracy"] > rows["B"]["accuracy"]
    assert rows["A"]["accuracy_low"] <= rows["A"]["accuracy"] <= rows["A"]["accuracy_high"]
    assert summary["comparison"]["overall"]["p_value"] < 0.05
    for row in rows.values():  # proxy students were trained and scored on the same test images
        assert 0.0 <= row["proxy_lc"] <= 1.0 and 0.0 <= row["proxy_nn"] <= 1.0
        assert row["quiz_accuracy"] is not None
    assert summary["test_images"] == design.test_count
    with open(out / "trials.csv") as f:
        trial_rows = list(csv.DictReader(f))
    assert len(trial_rows) == 12 * 14 + 10  # the partial participant's quiz is exported too
    assert {"participant", "condition", "phase", "trial", "label", "answer", "correct", "rt_ms"} <= set(trial_rows[0])
    with open(out / "participants.csv") as f:
        people = list(csv.DictReader(f))
    assert [p["status"] for p in people].count("completed") == 12
    with open(out / "data_dictionary.csv") as f:
        described = {(r["file"], r["column"]) for r in csv.DictReader(f)}
    assert ("trials.csv", "rt_ms") in described and ("participants.csv", "test_accuracy") in described
    html = (out / "report.html").read_text()
    assert "Digits &lt;test&gt;" in html and "fig_accuracy.png" in html and "permutation test" in html
    assert json.loads((out / "analysis.json").read_text())["conditions"][0]["condition"] == "A"


def test_analysis_with_no_participants_yet(digits_study, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    db.create_schema()
    summary = analyze(digits_study, db, tmp_path / "out", proxy=False, permutations=100)
    db.close()
    assert summary["participants_included"] == 0 and summary["comparison"]["overall"]["p_value"] is None
    assert "n/a" in (tmp_path / "out" / "report.html").read_text()


def answer_with(client, state, choose, rt_ms: int) -> dict:
    while state["phase"] in ("quiz", "test"):
        payload = {"phase": state["phase"], "trial": state["trial"], "stimulus": state["stimulus"],
                   "answer": choose(state), "rt_ms": rt_ms}
        state = client.post_json("/api/answer", payload).json()["state"]
    return state


def test_exclusions_are_applied_and_listed_never_silent(checks_study, serve_study, tmp_path):
    """Careful participants count; one who failed a check, one who answered implausibly fast and one
    screened out are left out, each listed with the reason; without the rules they count again."""
    live = serve_study(checks_study, f"sqlite:///{tmp_path / 'r.sqlite'}")
    labels = {s.token: s.label for s in checks_study.test_pool + checks_study.checks}
    for c in checks_study.conditions:
        labels.update({s.token: s.label for s in c.quiz})
    checks = [s.token for s in checks_study.checks]
    people = {"good1": (set(), 900), "good2": (set(), 900), "onefail": ({checks[0]}, 900), "fast": (set(), 120),
              "screened": (set(checks), 900)}  # id: (checks answered wrongly, response time in ms)
    for pid, (fail, rt) in people.items():
        client = live.client()
        state = start(client, None, Participation(pid), link={"PROLIFIC_PID": pid})
        final = answer_with(client, state, lambda s: (labels[s["stimulus"]] + (s["stimulus"] in fail)) % 10, rt)
        assert final["phase"] == ("screened_out" if pid == "screened" else "done"), pid
    summary = analyze(checks_study, live.db, tmp_path / "out", proxy=False, permutations=200)
    excluded = {e["participant"]: e for e in summary["exclusions"]["excluded"]}
    assert len(excluded) == 3 and summary["participants_included"] == 2 and summary["participants_total"] == 5
    reasons = sorted(e["reasons"] for e in excluded.values())
    assert reasons[0].startswith("6 of 6 test answers faster than 300 ms")
    assert reasons[1].startswith("failed 1 of 2 attention checks")
    assert reasons[2].startswith("screened out during the study after failing 2 of 2")
    assert sum(r["participants"] for r in summary["conditions"]) == 2
    assert all(r["test_trials"] == 6 * r["participants"] for r in summary["conditions"])  # checks never count
    with open(tmp_path / "out" / "exclusions.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="exclusions"' in html and "faster than 300 ms" in html and "failed 1 of 2 attention checks" in html
    everyone = analyze(checks_study, live.db, tmp_path / "all", proxy=False, permutations=200, exclude=False)
    assert everyone["participants_included"] == 4 and len(everyone["exclusions"]["excluded"]) == 3  # still listed
    assert "not applied" in (tmp_path / "all" / "report.html").read_text()
