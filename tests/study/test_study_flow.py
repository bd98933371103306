"""The state machine without HTTP: assignment, plans, the study folder, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from teachset.errors import TeachsetError
from teachset.study.db import Database, sessions, utcnow
from teachset.study.create import create_study
from teachset.study.design import load_study, parse_condition
from teachset.study.flow import Answer, FlowError, StudyFlow
from teachset.study.identity import InvalidParticipant, ParticipantId, participant_from_query


@pytest.fixture
def flow(digits_study, database_url):
    db = Database(database_url)
    db.create_schema()
    db.ensure_study(digits_study.uid, digits_study.name)
    yield StudyFlow(digits_study, db, digits_study.secrets()["participant_key"])
    db.close()


def complete(flow: StudyFlow, token: str) -> None:
    flow.finish_teaching(token)
    state = flow.state(flow.session(token))
    while state["phase"] in ("quiz", "test"):
        state = flow.answer(token, Answer(state["phase"], state["trial"], state["stimulus"], 0, 500))["state"]


def test_assignment_fills_the_least_filled_condition(flow):
    names = [flow.start(ParticipantId("url", f"p{i}")).condition for i in range(9)]
    assert abs(names.count("A") - names.count("B")) <= 1
    # a second start of the same participant is the same session
    assert flow.start(ParticipantId("url", "p0")).condition == names[0]


def test_abandoned_sessions_stop_counting_but_completed_ones_do(flow):
    old = [flow.start(ParticipantId("url", f"old{i}")) for i in range(4)]  # 2 A, 2 B
    a_sessions = [s for s in old if s.condition == "A"]
    complete(flow, a_sessions[0].token)
    # every session started long ago; only the completed one (A) still counts
    with flow.db.write() as conn:
        conn.execute(update(sessions).values(started_at=utcnow() - timedelta(hours=5)))
    assert flow.start(ParticipantId("url", "new1")).condition == "B"
    assert flow.start(ParticipantId("url", "new2")).condition in ("A", "B")


def test_plans_are_seeded_per_participant_and_hide_nothing_extra(flow, digits_study):
    first = flow.start(ParticipantId("url", "plan1"))
    again = flow._plan(first.condition, first.participant_hash)
    assert again == first.plan
    assert sorted(first.plan["test"]) == sorted(s.token for s in digits_study.test_pool)
    assert sorted(first.plan["quiz"]) == sorted(s.token for s in digits_study.condition(first.condition).quiz)
    other = flow.start(ParticipantId("url", "plan2"))
    orders = {tuple(flow._plan("A", h)["test"]) for h in (first.participant_hash, other.participant_hash, "x" * 64, "y" * 64)}
    assert len(orders) > 1  # orders differ between participants


def test_answers_only_at_the_current_trial(flow):
    session = flow.start(ParticipantId("url", "order"))
    with pytest.raises(FlowError) as refused:
        flow.answer(session.token, Answer("quiz", 0, session.plan["quiz"][0], 0, 100))
    assert refused.value.status == 409  # still on the teaching page
    flow.finish_teaching(session.token)
    assert flow.answer(session.token, Answer("quiz", 0, session.plan["quiz"][0], 0, 100))["duplicate"] is False
    with pytest.raises(FlowError):
        flow.answer("nope" * 10, Answer("quiz", 1, session.plan["quiz"][1], 0, 100))


def test_participant_ids_from_the_url():
    assert participant_from_query({"PROLIFIC_PID": "5f1a", "STUDY_ID": "x"}) == ParticipantId("prolific", "5f1a")
    assert participant_from_query({"workerId": "A1B2"}) == ParticipantId("mturk", "A1B2")
    assert participant_from_query({"participant": "lab-7"}) == ParticipantId("url", "lab-7")
    assert participant_from_query({}) is None
    for bad in ("{{%PROLIFIC_PID%}}", "a b", "<x>", "x" * 65):
        with pytest.raises(InvalidParticipant):
            participant_from_query({"PROLIFIC_PID": bad})


def test_the_study_folder(digits_study):
    meta = json.loads((digits_study.path / "study.json").read_text())
    assert meta["test"]["mode"] == "shared" and len(meta["test"]["pool"]) == 4
    teaching_ids = {s.source_id for c in digits_study.conditions for s in c.teach}
    assert not teaching_ids & {s.source_id for s in digits_study.test_pool}  # no teaching image is a test image
    files = digits_study.stimulus_files()
    assert all(path.is_file() for path in files.values()) and len(files) == 4 + 2 * 2 * 10
    assert (digits_study.path / "secrets.json").stat().st_mode & 0o077 == 0
    assert load_study(digits_study.path) == digits_study


def test_create_refuses_what_cannot_work(digits_study, pair_study, tmp_path):
    folder = digits_study.path / digits_study.conditions[0].folder
    with pytest.raises(TeachsetError, match="more than"):
        create_study("x", "digits", [("A", folder)], out=tmp_path / "s1", test_images=5000)
    with pytest.raises(TeachsetError, match="classes"):
        create_study("x", pair_study.dataset["spec"]["source"], [("A", folder)], out=tmp_path / "s2", test_images=5)
    with pytest.raises(TeachsetError, match="differ"):
        create_study("x", "digits", [("A", folder), ("A", folder)], out=tmp_path / "s3", test_images=5)
    with pytest.raises(TeachsetError, match="not a teaching set"):
        create_study("x", "digits", [("A", tmp_path)], out=tmp_path / "s4", test_images=5)
    (digits_study.path / "responses.sqlite").touch()
    try:
        with pytest.raises(TeachsetError, match="holds responses"):
            create_study("x", "digits", [("A", folder)], out=digits_study.path, test_images=5, overwrite=True)
    finally:
        (digits_study.path / "responses.sqlite").unlink()
    with pytest.raises(TeachsetError, match="NAME=PATH"):
        parse_condition("no-equals-sign")
    with pytest.raises(TeachsetError, match="condition name"):
        parse_condition("bad name=x")


def test_per_participant_test_images(digits_study, tmp_path, database_url):
    folder = digits_study.path / digits_study.conditions[0].folder
    design = create_study("pp", "digits", [("A", folder)], out=tmp_path / "pp", test_images=3,
                          per_participant_test=True, seed=3)
    assert design.test_mode == "per_participant" and len(design.test_pool) == 30
    db = Database(database_url)
    db.create_schema()
    db.ensure_study(design.uid, design.name)
    flow = StudyFlow(design, db, design.secrets()["participant_key"])
    tests = [tuple(flow.start(ParticipantId("url", f"pp{i}")).plan["test"]) for i in range(4)]
    db.close()
    assert all(len(t) == 3 and len(set(t)) == 3 for t in tests) and len(set(tests)) > 1


def test_attention_checks_are_spread_over_the_test():
    import random

    from teachset.study.checks import place_checks

    test, checks = [f"t{i}" for i in range(200)], [f"c{i}" for i in range(5)]
    for seed in range(20):
        order = place_checks(test, checks, random.Random(seed))
        assert [t for t in order if t.startswith("t")] == test and [t for t in order if t.startswith("c")] == checks
        places = [i for i, t in enumerate(order) if t.startswith("c")]
        assert places[0] > 0  # never the first trial
        assert [p // 41 for p in places] == [0, 1, 2, 3, 4]  # one in each fifth of the test
    assert place_checks(["t0"], ["c0"], random.Random(0)) == ["t0", "c0"]
    assert place_checks(test, [], random.Random(0)) == test


def test_a_plan_holds_the_checks_and_a_failed_check_can_end_the_session(checks_study, database_url):
    db = Database(database_url)
    db.create_schema()
    db.ensure_study(checks_study.uid, checks_study.name)
    flow = StudyFlow(checks_study, db, checks_study.secrets()["participant_key"])
    session = flow.start(ParticipantId("prolific", "plan-checks"))
    checks = {s.token: s for s in checks_study.checks}
    assert len(session.plan["test"]) == 8 and sum(t in checks for t in session.plan["test"]) == 2
    assert flow._plan(session.condition, session.participant_hash) == session.plan  # seeded per participant
    flow.finish_teaching(session.token)
    state = flow.state(flow.session(session.token))
    last = None
    while state["phase"] in ("quiz", "test"):
        wrong = state["stimulus"] in checks  # every check answered wrongly: the second one ends it
        answer = (checks[state["stimulus"]].label + 1) % 10 if wrong else 0
        last = state["trial"]
        state = flow.answer(session.token, Answer(state["phase"], state["trial"], state["stimulus"], answer, 500))["state"]
    ended = flow.session(session.token)
    assert state == {"phase": "screened_out", "url": "/done"} and ended.completion_code == "SCR33N"
    assert ended.plan["test"][last] in checks and ended.completed_at is not None
    if last < 7:  # the trials after the screen-out are refused
        with pytest.raises(FlowError, match="has ended"):
            flow.answer(session.token, Answer("test", last + 1, ended.plan["test"][last + 1], 0, 500))
    db.close()
