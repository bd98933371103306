"""What a researcher needs to run a study on Prolific, against a live server: platform ids and the
browser's environment stored, attention checks placed and recorded, the screen-out path, quotas
and the 'study full' page, the preview that stores nothing with the data, desktop-only studies,
the dashboard's login limit, the icon, and a database made by an older teachset."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from teachset.study.app import preview_study_id
from teachset.study.create import create_study
from teachset.study.db import Database, sessions, trials, utcnow
from teachset.study.export import load_data
from teachset.study.ratelimit import LoginLimiter
from teachset.study.simulate import HIDDEN, Participation, answer_all, start

PROLIFIC = {"PROLIFIC_PID": "5f1a2b3c4d", "STUDY_ID": "st0001", "SESSION_ID": "se0001"}
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"


@pytest.fixture
def live_checks(checks_study, database_url, serve_study):
    return serve_study(checks_study, database_url)


def count(live, where=None) -> int:
    query = select(func.count()).select_from(sessions)
    with live.db.read() as conn:
        return conn.execute(query if where is None else query.where(where)).scalar_one()


def table(reply) -> list[dict]:
    return list(csv.DictReader(io.StringIO(reply.body.decode())))


def export(live, name: str) -> list[dict]:
    token = live.design.secrets()["dashboard_token"]
    return table(live.client().get(f"/dashboard/export/{name}", headers={"Authorization": f"Bearer {token}"}))


def consent_form(client, query: str, **headers) -> dict:
    reply = client.get(query, headers=headers)
    assert reply.status == 200, reply.body[:300]
    return {"consent": "yes", **dict(HIDDEN.findall(reply.body.decode()))}


def test_prolific_ids_and_the_browser_environment_are_stored(live_checks):
    client = live_checks.client()
    form = consent_form(client, "/?PROLIFIC_PID=5f1a2b3c4d&STUDY_ID=st0001&SESSION_ID=se0001", **{"User-Agent": DESKTOP})
    assert form["STUDY_ID"] == "st0001" and form["SESSION_ID"] == "se0001"
    form.update(screen_w="1920", screen_h="1080", window_w="1280", window_h="720", pixel_ratio="1.25", pointer="fine")
    reply = client.request("POST", "/consent", "&".join(f"{k}={v}" for k, v in form.items()).encode(),
                           "application/x-www-form-urlencoded", headers={"User-Agent": DESKTOP})
    assert reply.status == 303 and reply.headers["location"] == "/instructions"
    with live_checks.db.read() as conn:
        row = conn.execute(sessions.select()).one()
    assert (row.id_source, row.platform_study_id, row.platform_session_id) == ("prolific", "st0001", "se0001")
    assert row.environment == {"user_agent": DESKTOP, "screen_w": 1920, "screen_h": 1080, "window_w": 1280,
                               "window_h": 720, "pixel_ratio": 1.25, "pointer": "fine"}
    person = export(live_checks, "participants.csv")[0]
    assert (person["platform_study_id"], person["screen"], person["window"], person["pointer"]) == (
        "st0001", "1920x1080", "1280x720", "fine")
    # junk in the environment is stored as missing, never refused; a bad STUDY_ID is refused like a bad id
    other = live_checks.client()
    junk = consent_form(other, "/?PROLIFIC_PID=junk0001&STUDY_ID=st0001")
    junk.update(screen_w="1e9", window_w="²", pixel_ratio="NaN", pointer="<b>")
    assert other.post_form("/consent", junk).status == 303
    for query in ("/?PROLIFIC_PID=x1&STUDY_ID={{%25STUDY_ID%25}}", "/?PROLIFIC_PID=x1&SESSION_ID=a%20b", "/"):
        assert live_checks.client().get(query).status == 400  # a Prolific study needs PROLIFIC_PID, well formed
    with live_checks.db.read() as conn:
        junk_row = conn.execute(sessions.select().where(sessions.c.participant_hash != row.participant_hash)).one()
    assert junk_row.environment["screen_w"] is None and junk_row.environment["pointer"] is None


def walk(live, link: dict, choose, state=None, client=None):
    client = client or live.client()
    record = Participation("p")
    state = state or start(client, None, record, link=link)
    return client, answer_all(client, state, choose, record, random.Random(0)), record


def test_attention_checks_are_placed_recorded_and_screen_out(live_checks, checks_study):
    labels = {s.token: s.label for s in checks_study.test_pool + checks_study.checks}
    for c in checks_study.conditions:
        labels.update({s.token: s.label for s in c.quiz})
    check_tokens = {s.token for s in checks_study.checks}
    seen = []

    def careful(state):
        seen.append(state)
        return labels[state["stimulus"]]

    client, final, record = walk(live_checks, PROLIFIC, careful)
    assert final == {"phase": "done", "url": "/done"} and record.completion_code == "C0MPL3T3"
    tests = [s for s in seen if s["phase"] == "test"]
    assert len(tests) == 8 and [s["step"] for s in seen] == list(range(len(seen))) and seen[0]["steps"] == 18
    checks = [s for s in tests if s["stimulus"] in check_tokens]
    assert len(checks) == 2 and all("instruction" in s and "please click" in s["instruction"] for s in checks)
    assert all("instruction" not in s for s in tests if s["stimulus"] not in check_tokens)
    assert tests[0]["stimulus"] not in check_tokens  # never the first trial
    done = client.get("/done").body.decode()
    assert "cc=C0MPL3T3" in done and "Thank you for taking part" in done

    def careless(state):
        right = labels[state["stimulus"]]
        return (right + 1) % 10 if state["stimulus"] in check_tokens else right

    client, final, record = walk(live_checks, {**PROLIFIC, "PROLIFIC_PID": "careless01"}, careless)
    assert final == {"phase": "screened_out", "url": "/done"} and record.completion_code == "SCR33N"
    page = client.get("/done").body.decode()
    assert "The study ends here" in page and "cc=SCR33N" in page and "attention checks were not right" in page
    state = client.get("/api/state").json()
    assert state["phase"] == "screened_out"
    careful_row, careless_row = sorted(export(live_checks, "participants.csv"), key=lambda p: p["participant"])
    assert (careful_row["status"], careful_row["checks"], careful_row["checks_failed"], careful_row["test_trials"]) == (
        "completed", "2", "0", "6")
    assert (careless_row["status"], careless_row["checks_failed"], careless_row["completion_code"]) == (
        "screened_out", "2", "SCR33N")
    rows = export(live_checks, "trials.csv")
    assert sorted(r["check"] for r in rows if r["check"]) == ["instructed"] * 4
    assert all(r["check"] == "" for r in rows if r["phase"] == "quiz")


def test_a_study_full_page_once_every_condition_has_its_quota(digits_study, database_url, serve_study, tmp_path):
    design = create_study("Quota", "digits", [(c.name, digits_study.path / c.folder) for c in digits_study.conditions],
                          out=tmp_path / "quota", test_images=4, quota=1, attention_checks=1, screen_out_after=1)
    live = serve_study(design, database_url)
    first, second = live.client(), live.client()
    start(first, "q1", Participation("q1"))
    start(second, "q2", Participation("q2"))
    with live.db.read() as conn:
        assert sorted(r.condition for r in conn.execute(sessions.select())) == ["A", "B"]
    third = live.client()
    page = third.get("/?participant=q3")
    assert page.status == 200 and b"This study is full" in page.body and b"consent" not in page.body
    reply = third.post_form("/consent", {"consent": "yes", "participant": "q3"})
    assert b"This study is full" in reply.body and count(live) == 2
    # a participant screened out by a failed check frees the place
    check = {s.token for s in design.checks}
    state = first.get("/api/state").json()
    final = answer_all(first, state, lambda s: 1 if s["stimulus"] in check else 0, Participation("q1"), random.Random(0))
    assert final["phase"] == "screened_out"
    assert start(third, "q3", Participation("q3"))["phase"] in ("quiz", "test") and count(live) == 3
    assert b"This study is full" in live.client().get("/?participant=q4").body


def test_the_preview_walks_the_study_and_stores_nothing_with_the_data(live_checks, checks_study):
    token = checks_study.secrets()["dashboard_token"]
    researcher = live_checks.client()
    assert researcher.get("/dashboard/preview?token=wrong").status == 403
    reply = researcher.get(f"/dashboard/preview?token={token}&condition=B")
    assert reply.status == 303 and reply.headers["location"] == "/" and "teachset_preview" in researcher.cookies
    consent = researcher.get("/")
    assert b"preview-banner" in consent.body and b"nothing you do" in consent.body
    _, final, record = walk(live_checks, {}, lambda s: 0, client=researcher)  # a Prolific study, previewed without an id
    assert final["phase"] in ("done", "screened_out")
    assert b"preview-banner" in researcher.get("/done").body
    preview = preview_study_id(checks_study.uid)
    assert count(live_checks, sessions.c.study_id == checks_study.uid) == 0
    with live_checks.db.read() as conn:
        row = conn.execute(sessions.select().where(sessions.c.study_id == preview)).one()
    assert row.condition == "B"
    data = load_data(live_checks.db, checks_study)
    assert data.participants == [] and data.trials == [] and data.events == []
    assert export(live_checks, "trials.csv") == [] and export(live_checks, "participants.csv") == []
    # a preview cookie a participant makes up is no preview; leaving the preview ends it
    forged = live_checks.client()
    forged.cookies["teachset_preview"] = "B." + "0" * 32
    assert forged.get("/").status == 400  # the real study: it needs a Prolific id
    researcher.get("/preview/exit")
    assert "teachset_preview" not in researcher.cookies and researcher.get("/").status == 400
    # preview sessions older than a day are deleted when the next preview starts
    with live_checks.db.write() as conn:
        conn.execute(update(sessions).where(sessions.c.study_id == preview).values(started_at=utcnow() - timedelta(days=2)))
    researcher.get(f"/dashboard/preview?token={token}")
    assert count(live_checks, sessions.c.study_id == preview) == 0
    with live_checks.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(trials)).scalar_one() == 0


def test_a_desktop_only_study_turns_phones_away(digits_study, serve_study, tmp_path):
    design = create_study("Desk", "digits", [("A", digits_study.path / digits_study.conditions[0].folder)],
                          out=tmp_path / "desk", test_images=4, desktop_only=True)
    live = serve_study(design, f"sqlite:///{tmp_path / 'r.sqlite'}")
    phone = live.client().get("/?participant=ph1", headers={"User-Agent": PHONE})
    assert phone.status == 200 and b"needs a computer" in phone.body and b'name="consent"' not in phone.body
    client = live.client()
    form = consent_form(client, "/?participant=ph2", **{"User-Agent": DESKTOP})
    assert 'data-desktop-only="1"' in client.get("/?participant=ph2", headers={"User-Agent": DESKTOP}).body.decode()
    for agent, pointer in ((PHONE, "fine"), (DESKTOP, "coarse")):  # by user agent, or a touch-only pointer
        body = "&".join(f"{k}={v}" for k, v in {**form, "pointer": pointer}.items()).encode()
        reply = client.request("POST", "/consent", body, "application/x-www-form-urlencoded", headers={"User-Agent": agent})
        assert b"needs a computer" in reply.body
    assert count(live) == 0
    body = "&".join(f"{k}={v}" for k, v in {**form, "pointer": "fine"}.items()).encode()
    assert client.request("POST", "/consent", body, "application/x-www-form-urlencoded",
                          headers={"User-Agent": DESKTOP}).status == 303
    assert count(live) == 1


def test_the_dashboard_login_is_rate_limited(live):
    token = live.design.secrets()["dashboard_token"]
    guesser = live.client()
    statuses = [guesser.get(f"/dashboard/login?token=guess{i:04d}").status for i in range(300)]
    assert statuses[:10] == [403] * 10 and set(statuses[10:]) == {429}
    blocked = guesser.get(f"/dashboard/login?token={token}")  # while blocked, even the right token is refused
    assert blocked.status == 429 and int(blocked.headers["retry-after"]) >= 1 and b"too many" in blocked.body
    reply = guesser.get("/dashboard/export/trials.csv", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 429 and reply.json()["error"].startswith("too many")
    assert guesser.post_form("/dashboard/login", {"token": "guess"}).status == 429
    assert guesser.get(f"/dashboard/preview?token={token}").status == 429


def test_the_login_limit_opens_again_after_its_window():
    now = [0.0]
    limiter = LoginLimiter(per_client=3, overall=5, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") == 0
    now[0] = 30.0
    limiter.failed("b"), limiter.failed("c")  # five failures in the window: every address waits
    assert limiter.retry_after("d") == 30
    now[0] = 60.5
    assert limiter.retry_after("a") == 0 and limiter.retry_after("d") == 0


def test_the_icon_is_served(live):
    client = live.client()
    icon = client.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon" and icon.body[:4] == b"\x00\x00\x01\x00"
    assert client.get("/static/favicon.svg").status == 200
    assert re.search(rb'<link rel="icon" href="/favicon.ico"', client.get("/").body)


def test_a_database_of_an_older_teachset_gets_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE studies (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, created_at DATETIME NOT NULL)")
        conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, study_id VARCHAR(32), token VARCHAR(64), "
                     "participant_hash VARCHAR(64), id_source VARCHAR(16), condition VARCHAR(40), plan JSON, phase VARCHAR(16), "
                     "position INTEGER, shown_at DATETIME, started_at DATETIME, updated_at DATETIME, completed_at DATETIME, "
                     "completion_code VARCHAR(64))")
    with Database(f"sqlite:///{path}") as db:
        db.create_schema()
        with db.read() as conn:
            columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(sessions)")}
        db.create_schema()  # twice: nothing to add the second time
    assert {"browser_hash", "platform_study_id", "platform_session_id", "environment"} <= columns
