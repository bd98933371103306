"""The participant API against a live server, on SQLite and on PostgreSQL (`database_url` runs both):
repeat participation, reload and resume, tampered ids, double submission, invalid payloads,
writes after completion; and that a test label never reaches the browser."""

from __future__ import annotations

import csv
import io
import json
import re
import random
import threading

import pytest
from sqlalchemy import func, select

from teachset.study.db import events, sessions, trials
from teachset.study.identity import ParticipantId
from teachset.study.simulate import StudyClient, answer_all, oracle, run_participant, start, Participation

STATE_KEYS = {"phase", "url", "trial", "total", "stimulus", "image", "step", "steps"}


def count(live, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with live.db.read() as conn:
        return conn.execute(query).scalar_one()


def begin(live, participant: str | None = "p1") -> tuple[StudyClient, dict]:
    client = live.client()
    return client, start(client, participant, Participation(participant or "anon"))


def answer(client: StudyClient, state: dict, choice: int = 0, **change):
    payload = {"phase": state["phase"], "trial": state["trial"], "stimulus": state["stimulus"], "answer": choice,
               "rt_ms": 800, **change}
    return client.post_json("/api/answer", payload)


def finish(live, client, state) -> dict:
    return answer_all(client, state, lambda s: 0, Participation("x"), random.Random(0))


def test_a_whole_participation_never_sends_a_test_label(live):
    design = live.design
    client, state = begin(live, "whole")
    test_tokens = {s.token for s in design.test_pool}
    seen_test_replies = 0
    while state["phase"] in ("quiz", "test"):
        assert set(state) == STATE_KEYS
        assert state["image"] == f"/img/{state['stimulus']}.png"
        reply = answer(client, state)
        assert reply.status == 200
        body = reply.json()
        if state["phase"] == "test":
            assert state["stimulus"] in test_tokens
            assert set(body) == {"recorded", "duplicate", "state"}  # no feedback, no label, no correctness
            seen_test_replies += 1
        else:
            assert set(body["feedback"]) == {"correct", "label", "answer"}  # a teaching image's label, to highlight it
        if body["state"]["phase"] != "done":  # the trial page embeds the state, nothing more
            page = client.get("/trial").body.decode()
            embedded = page.split('id="initial-state" type="application/json">', 1)[1].split("</script>", 1)[0]
            assert json.loads(embedded) == body["state"]
        state = body["state"]
    assert seen_test_replies == design.test_count
    assert state == {"phase": "done", "url": "/done"}
    done = client.get("/done")
    assert done.status == 200 and b"completion-code" in done.body
    assert count(live, trials) == len(design.conditions[0].quiz) + design.test_count


def test_a_session_belongs_to_the_browser_that_started_it(live):
    client, state = begin(live, "repeat")
    assert answer(client, state).status == 200
    # the same browser opening the link again: the same session, where it was, no new row
    again, resumed = start(client, "repeat", Participation("repeat")), None
    assert again["trial"] == 1 and again["phase"] == "quiz"
    # the same id from another browser: a page that says so, no session cookie, no new row
    other = live.client()
    reply = other.get("/?participant=repeat")
    assert reply.status == 409 and b"open in another browser" in reply.body
    assert "teachset_session" not in other.cookies and other.get("/api/state").status == 401
    assert other.post_form("/consent", {"consent": "yes", "participant": "repeat"}).status == 409
    assert count(live, sessions) == 1
    # a browser that lost its session cookie (the consent reply never came) finds it by its browser cookie
    lost = live.client()
    lost.cookies = {"teachset_browser": client.cookies["teachset_browser"]}
    resumed = start(lost, "repeat", Participation("repeat"))
    assert resumed["trial"] == 1 and lost.cookies["teachset_session"] == client.cookies["teachset_session"]
    finish(live, client, again)
    code = client.get("/done").body.decode().split('id="completion-code">', 1)[1].split("<", 1)[0]
    # after completion: the link leads this browser to its end page, and no other browser to the code
    assert client.get("/?participant=repeat").headers["location"] == "/done"
    reply = live.client().get("/?participant=repeat")
    assert reply.status == 409 and b"already taken part" in reply.body and code.encode() not in reply.body
    assert count(live, sessions) == 1


def test_a_study_may_let_a_session_resume_on_another_device(digits_study, database_url, serve_study, tmp_path):
    from teachset.study.create import create_study

    folders = [(c.name, digits_study.path / c.folder) for c in digits_study.conditions]
    design = create_study("Anywhere", "digits", folders, out=tmp_path / "anywhere", test_images=4, allow_other_device=True)
    assert json.loads((design.path / "study.json").read_text())["settings"]["allow_other_device"] is True
    live = serve_study(design, database_url)
    client, state = begin(live, "roams")
    assert answer(client, state).status == 200
    other, resumed = begin(live, "roams")  # another browser takes the session over where it was
    assert resumed["trial"] == 1 and other.cookies["teachset_session"] == client.cookies["teachset_session"]
    assert count(live, sessions) == 1


def test_reload_resumes_where_the_participant_was(live):
    client, state = begin(live, "reload")
    for _ in range(3):
        state = answer(client, state).json()["state"]
    page = client.get("/trial").body.decode()
    embedded = json.loads(page.split('id="initial-state" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert embedded == state and embedded["trial"] == 3
    assert client.get("/api/state").json() == state
    # the teaching page and the entry link send a participant past it back to the trial
    assert client.get("/teach").headers["location"] == "/trial"
    assert client.get("/").headers["location"] == "/trial"


def test_participant_ids_are_stored_only_as_a_keyed_hash(live):
    begin(live, "PlainId12345")
    with live.db.read() as conn:
        row = conn.execute(sessions.select()).one()
    assert "PlainId12345" not in json.dumps({k: str(v) for k, v in row._mapping.items()})
    key = live.design.secrets()["participant_key"]
    assert row.participant_hash == ParticipantId("url", "PlainId12345").hashed(key)
    assert row.participant_hash != ParticipantId("prolific", "PlainId12345").hashed(key)


def test_tampered_ids_are_refused(live):
    client, state = begin(live, "tamper")
    # a session token that is well formed but not ours
    stranger = live.client()
    stranger.cookies["teachset_session"] = "A" * 43
    for reply in (stranger.get("/api/state"), answer(stranger, state), stranger.get("/trial"),
                  stranger.post_json("/api/event", {"event_id": "abcdefgh1", "kind": "show_teaching_set"})):
        assert reply.status == 403
    # a malformed token
    stranger.cookies["teachset_session"] = "<script>"
    assert stranger.get("/api/state").status == 400
    # no token
    assert live.client().get("/api/state").status == 401
    # another trial's stimulus, another participant's stimulus, a made-up one
    other_client, other_state = begin(live, "tamper-other")
    wrong = {s.token for s in live.design.conditions[0].quiz + live.design.conditions[1].quiz} - {state["stimulus"]}
    for stimulus in (sorted(wrong)[0], other_state["stimulus"] if other_state["stimulus"] != state["stimulus"] else sorted(wrong)[1],
                     "0123456789abcdef"):
        reply = answer(client, state, stimulus=stimulus)
        assert reply.status == 400, reply.body
    # a trial index or phase that is not where the session is
    assert answer(client, state, trial=5).status == 409
    assert answer(client, state, phase="test").status == 409
    assert count(live, trials) == 0
    # participant ids in the link: invalid characters, an unfilled placeholder
    for query in ("/?PROLIFIC_PID=%3Cb%3Ebad%3C/b%3E", "/?PROLIFIC_PID={{%25PROLIFIC_PID%25}}", "/?workerId=" + "x" * 65,
                  "/?participant=tamper%0A"):  # a trailing newline is not the same id with a twist: refused
        reply = live.client().get(query)
        assert reply.status == 400 and b"<b>bad" not in reply.body


def test_simultaneous_consents_with_one_participant_id_make_one_session(live):
    """Eight browsers consent at once with one id: one session, owned by the browser that won; the
    other seven are told it is open elsewhere."""
    barrier, statuses, cookies = threading.Barrier(8), [], []

    def consent():
        c = live.client()
        assert c.get("/?participant=twin").status == 200
        barrier.wait()
        statuses.append(c.post_form("/consent", {"consent": "yes", "participant": "twin"}).status)
        cookies.extend([c.cookies["teachset_session"]] if "teachset_session" in c.cookies else [])

    threads = [threading.Thread(target=consent) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [303] + [409] * 7 and len(cookies) == 1
    assert count(live, sessions) == 1


def test_double_submission_is_stored_once(live):
    client, state = begin(live, "double")
    first = answer(client, state, choice=3)
    again = answer(client, state, choice=3)
    assert first.status == 200 and again.status == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["state"] == first.json()["state"]
    # a different answer to an answered trial does not overwrite it
    assert answer(client, state, choice=4).status == 409
    with live.db.read() as conn:
        stored = conn.execute(trials.select()).all()
    assert len(stored) == 1 and stored[0].answer == 3
    # the same request sent by eight threads at once: one row
    state = first.json()["state"]
    token = client.cookies["teachset_session"]
    barrier, replies = threading.Barrier(8), []

    def send():
        c = live.client()
        c.cookies["teachset_session"] = token
        barrier.wait()
        replies.append(answer(c, state, choice=2))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status for r in replies) == [200] * 8
    assert sum(not r.json()["duplicate"] for r in replies) == 1
    assert count(live, trials) == 2
    # a double-clicked consent (same visit token): one session
    anon = live.client()
    page = anon.get("/").body.decode()
    visit = page.split('name="visit" value="', 1)[1].split('"', 1)[0]
    for _ in range(2):
        assert anon.post_form("/consent", {"consent": "yes", "visit": visit}).status == 303
    assert count(live, sessions) == 2  # "double" and this one
    # an event sent twice: one row
    event = {"event_id": "evt-0000001", "kind": "tab_hidden"}
    assert [client.post_json("/api/event", event).json()["duplicate"] for _ in range(2)] == [False, True]
    assert count(live, events, kind="tab_hidden") == 1


INVALID_ANSWERS = [
    (b"not json", 400),
    (b"[1, 2]", 400),
    (b'{"phase": "quiz"}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 0, "rt_ms": 5, "extra": 1}', 400),
    (b'{"phase": "practice", "trial": 0, "stimulus": "S", "answer": 0, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": "0", "stimulus": "S", "answer": 0, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": true, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 1.5, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 10, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": -1, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 0, "rt_ms": -5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 0, "rt_ms": 99999999999}', 400),
    (b'{"phase": "quiz", "trial": -1, "stimulus": "S", "answer": 0, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "<script>", "answer": 0, "rt_ms": 5}', 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": null, "answer": 0, "rt_ms": 5}', 400),
    (b"\xff\xfe", 400),
    (b"", 400),
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S", "answer": 0, "rt_ms": 5, "pad": "' + b"x" * 5000 + b'"}', 413),
    (b"[" * 1500 + b"]" * 1500, 400),  # nesting deep enough to overflow the parser, small enough to be read
    (b'{"phase": "quiz", "trial": 0, "stimulus": "S+newline", "answer": 0, "rt_ms": 5}', 400),
]


@pytest.mark.parametrize("body,status", INVALID_ANSWERS, ids=[f"answer{i}" for i in range(len(INVALID_ANSWERS))])
def test_invalid_answers_get_a_clear_4xx(live, body, status):
    client, state = begin(live, "invalid")
    body = body.replace(b'"S"', json.dumps(state["stimulus"]).encode())
    body = body.replace(b'"S+newline"', json.dumps(state["stimulus"] + "\n").encode())
    reply = client.request("POST", "/api/answer", body, "application/json")
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    assert set(reply.json()) == {"error"} and reply.json()["error"]
    assert count(live, trials) == 0


def test_other_invalid_requests_get_a_clear_4xx(live):
    client, state = begin(live, "other")
    valid = json.dumps({"phase": state["phase"], "trial": 0, "stimulus": state["stimulus"], "answer": 0, "rt_ms": 5})
    cases = [
        (client.request("POST", "/api/answer", valid.encode(), "text/plain"), 415),
        (client.request("POST", "/api/answer", valid.encode(), "application/x-www-form-urlencoded"), 415),
        (client.request("POST", "/api/answer", b"{}", "application/json", headers={"Content-Length": "99999"}), 413),
        (client.get("/api/answer"), 405),
        (client.request("DELETE", "/api/state"), 405),
        (client.get("/api/nothing"), 404),
        (client.get("/img/0123456789abcdef.png"), 404),
        (client.get("/img/../study.json"), 404),
        (client.get("/static/secrets.json"), 404),
        (client.post_json("/api/event", {"event_id": "short", "kind": "show_teaching_set"}), 400),
        (client.post_json("/api/event", {"event_id": "abcdefgh12", "kind": "reveal_labels"}), 400),
        (client.post_json("/api/event", {"event_id": "abcdefgh12", "kind": "hide_teaching_set", "duration_ms": "1"}), 400),
        (client.request("POST", "/consent", b"%zz=\xff", "application/x-www-form-urlencoded"), 400),
        (client.post_json("/api/event", {"event_id": "abcdefgh13", "kind": "break", "duration_ms": 5}), 409),  # in the quiz
        (client.post_json("/api/event", {"event_id": "abcdefgh14", "kind": "show_teaching_set"}), 409),  # hidden in the quiz
        (client.get("/dashboard/preview?condition=..%2F..%2Fstudy.json",
                    headers={"Authorization": f"Bearer {live.design.secrets()['dashboard_token']}"}), 400),
        (client.get("/favicon.ico/../secrets.json"), 404),
        (client.get("/static/favicon.svg%00"), 404),
    ]
    for reply, status in cases:
        assert reply.status == status, (status, reply.body)
        assert reply.status < 500
    assert count(live, trials) == 0


def test_writes_after_completion_are_refused(live):
    client, state = begin(live, "complete")
    last_payload = None
    while state["phase"] in ("quiz", "test"):
        last_payload = {"phase": state["phase"], "trial": state["trial"], "stimulus": state["stimulus"], "answer": 1,
                        "rt_ms": 900}
        state = client.post_json("/api/answer", last_payload).json()["state"]
    stored = count(live, trials)
    # the retry of the last answer (its reply was lost) is acknowledged, not stored again
    retry = client.post_json("/api/answer", last_payload)
    assert retry.status == 200 and retry.json()["duplicate"] is True
    # anything new is refused
    assert client.post_json("/api/answer", {**last_payload, "answer": 2}).status == 409
    assert client.post_json("/api/answer", {**last_payload, "trial": last_payload["trial"] + 1}).status == 409
    assert client.post_json("/api/event", {"event_id": "late-event-1", "kind": "show_teaching_set"}).status == 409
    assert client.post_form("/teach/done", {}).headers["location"] == "/done"
    assert count(live, trials) == stored
    assert count(live, events, kind="show_teaching_set") == 0


def test_teaching_set_openings_tabs_and_breaks_are_logged_as_events(live):
    client, state = begin(live, "events")
    # the quiz is not answered by looking: the teaching set is neither on its page nor can it be opened
    assert client.post_json("/api/event", {"event_id": "open-00000", "kind": "show_teaching_set"}).status == 409
    page = client.get("/trial").body.decode()
    assert 'id="show-teaching"' not in page and "teaching-dialog" not in page
    assert not any(s.token in page for c in live.design.conditions for s in c.teach)
    assert client.post_json("/api/event", {"event_id": "away-00001", "kind": "tab_hidden"}).status == 200
    assert client.post_json("/api/event", {"event_id": "back-00001", "kind": "tab_visible", "duration_ms": 2500}).status == 200
    while state["phase"] == "quiz":
        state = answer(client, state).json()["state"]
    assert 'id="show-teaching"' in client.get("/trial").body.decode()  # in the test it is there
    assert client.post_json("/api/event", {"event_id": "open-00001", "kind": "show_teaching_set"}).status == 200
    state = answer(client, state).json()["state"]
    assert client.post_json("/api/event", {"event_id": "close-0001", "kind": "hide_teaching_set",
                                           "duration_ms": 4200}).status == 200
    assert client.post_json("/api/event", {"event_id": "break-0001", "kind": "break", "duration_ms": 9000}).status == 200
    with live.db.read() as conn:
        rows = conn.execute(events.select().order_by(events.c.id)).all()
    assert [(e.kind, e.phase, e.position, e.duration_ms) for e in rows] == [
        ("teaching_done", "teaching", 0, None), ("tab_hidden", "quiz", 0, None), ("tab_visible", "quiz", 0, 2500),
        ("show_teaching_set", "test", 0, None), ("hide_teaching_set", "test", 1, 4200), ("break", "test", 1, 9000)]
    token = live.design.secrets()["dashboard_token"]
    people = live.client().get("/dashboard/export/participants.csv", headers={"Authorization": f"Bearer {token}"})
    row = next(csv.DictReader(io.StringIO(people.body.decode())))
    assert (row["tab_hidden"], row["tab_hidden_s"], row["breaks"], row["revisits_test"]) == ("1", "2.5", "1", "1")


def test_teaching_page_lists_classes_as_rows_and_escapes(live):
    client = live.client()
    consent = client.get("/?participant=rows").body.decode()
    assert "Digits &lt;test&gt;" in consent and "Digits <test>" not in consent  # the study name is escaped
    assert client.post_form("/consent", {"consent": "yes", "participant": "rows"}).status == 303
    page = client.get("/teach").body.decode()
    assert page.count('class="class-row"') == 10
    condition = client_condition(live)
    for stimulus in live.design.condition(condition).teach:
        assert f"/img/{stimulus.token}.png" in page
    for stimulus in live.design.condition(condition).quiz:  # quiz tokens never appear beside a label
        assert stimulus.token not in page
    # escaping of what a participant sends: a refused placeholder id is echoed, escaped
    reply = live.client().get("/?PROLIFIC_PID=%7B%3Cscript%3Ealert(1)%3C/script%3E")
    assert reply.status == 400
    assert b"<script>alert" not in reply.body and b"&lt;script&gt;alert" in reply.body


def client_condition(live) -> str:
    with live.db.read() as conn:
        return conn.execute(select(sessions.c.condition)).scalar_one()


def test_declining_consent_stores_nothing(live):
    client = live.client()
    client.get("/?participant=decline")
    reply = client.post_form("/consent", {"participant": "decline"})
    assert reply.status == 200 and b"nothing was recorded" in reply.body
    assert count(live, sessions) == 0


def test_dashboard_needs_the_token(live):
    token = live.design.secrets()["dashboard_token"]
    run_participant(live.url, "dash", oracle(live.design, 1.0, random.Random(0)), seed=0)
    anyone = live.client()
    assert anyone.get("/dashboard").headers["location"] == "/dashboard/login"
    assert anyone.get("/dashboard/login?token=wrong").status == 403
    assert anyone.get("/dashboard/export/trials.csv").status == 401
    researcher = live.client()
    assert researcher.get(f"/dashboard/login?token={token}").status == 303
    page = researcher.get("/dashboard")
    # the one participant is counted as started and completed, none in progress or abandoned
    assert page.status == 200 and re.search(r"<td>1</td>\s*<td>0</td><td>0</td><td>1</td>", page.body.decode())
    trials_csv = researcher.get("/dashboard/export/trials.csv")
    assert trials_csv.status == 200 and trials_csv.headers["content-type"].startswith("text/csv")
    assert len(trials_csv.body.decode().strip().splitlines()) == 1 + 10 + live.design.test_count
    bearer = live.client().get("/dashboard/export/participants.csv", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status == 200 and b"P0001" in bearer.body
    assert researcher.get("/dashboard/export/secrets.json").status == 404
