"""The study's data as tables: trial-level long format, one row per participant, events, and a
data dictionary that says what every column means. The dashboard's downloads and the analysis
both read these; nothing here changes the database.

Participants are named P0001, P0002, ... (their session number); the keyed hash of the platform
id is in the participants table only. Attention-check trials are rows of trials.csv marked in its
`check` column; every count and accuracy of the participants table is over the test images alone.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import select

from ..atomic import atomic_write_text
from ..errors import TeachsetError
from .db import Database, events, sessions, trials, utcnow
from .design import StudyDesign
from .simulate import is_simulated, simulation_mark

PHASE_ORDER = {"quiz": 0, "test": 1}

TRIAL_COLUMNS = [
    ("participant", "pseudonymous participant code (P + session number)"),
    ("condition", "the condition (teaching set) the participant was assigned to"),
    ("completed", "1 if the participant finished the study, else 0 (screened out: 0)"),
    ("simulated", "1 for a simulated participant (teachset study simulate), else 0"),
    ("phase", "quiz (a teaching image, unlabeled) or test (a dataset image outside every teaching set, or an "
              "attention check)"),
    ("check", "empty for a test image; instructed (a trial that said which class to click) or image (an "
              "unambiguous image) for an attention check"),
    ("trial", "index of the trial within its phase, 0-based, in the order the participant saw them"),
    ("trial_overall", "index over quiz and test trials together, 0-based"),
    ("stimulus", "opaque token of the image shown (its file is stimuli/<token>.png in the study folder)"),
    ("item", "test: index of the image in the dataset; quiz: index of the image in the condition's teaching set; "
             "check: index of the check in the study's attention checks"),
    ("source_id", "the dataset's id of the image (empty for generated teaching images)"),
    ("label", "true class index"),
    ("label_name", "true class name"),
    ("answer", "class index the participant chose"),
    ("answer_name", "class name the participant chose"),
    ("correct", "1 if answer == label, else 0 (for a check: passed or failed)"),
    ("rt_ms", "response time measured in the browser, from the image being displayed to the click, in ms"),
    ("server_rt_ms", "time between the server sending the trial and storing the answer, in ms (includes network)"),
    ("teaching_set_opened", "how many times the participant reopened the teaching set during this trial"),
    ("aid_opened", "how many times the participant opened a teaching aid (an image's strips) during this trial"),
    ("shown_at", "when the server sent the trial (UTC, ISO 8601)"),
    ("answered_at", "when the server stored the answer (UTC, ISO 8601)"),
]
PARTICIPANT_COLUMNS = [
    ("participant", "pseudonymous participant code (P + session number)"),
    ("condition", "the condition (teaching set) the participant was assigned to"),
    ("status", "completed, screened_out (ended early by failed attention checks), in_progress (active within the "
               "assignment window) or abandoned"),
    ("simulated", "1 for a simulated participant (teachset study simulate: answers drawn from a known proxy, marked "
                  "with the study's key), else 0; the analysis leaves them out unless asked"),
    ("id_source", "where the participant id came from: prolific, mturk, url (participant=...) or anonymous"),
    ("participant_hash", "HMAC-SHA256 of the platform id under the study's secret key (not reversible without it)"),
    ("platform_study_id", "the platform's study id from the link (Prolific STUDY_ID, MTurk hitId)"),
    ("platform_session_id", "the platform's session id from the link (Prolific SESSION_ID, MTurk assignmentId)"),
    ("started_at", "consent given (UTC)"),
    ("completed_at", "last answer stored (UTC); empty if not completed"),
    ("duration_s", "completed_at - started_at in seconds; empty if not completed"),
    ("teaching_s", "seconds from consent to leaving the teaching page"),
    ("quiz_trials", "quiz answers stored"),
    ("quiz_accuracy", "fraction of quiz answers correct"),
    ("test_trials", "test answers stored (attention checks not counted)"),
    ("test_correct", "test answers correct"),
    ("test_accuracy", "fraction of test answers correct"),
    ("median_rt_ms", "median browser response time over test trials"),
    ("fast_answers", "test answers faster than the study's fast_rt_ms (implausibly fast)"),
    ("checks", "attention checks answered"),
    ("checks_failed", "attention checks answered wrongly"),
    ("revisits_quiz", "times the teaching set was reopened during the quiz"),
    ("revisits_test", "times the teaching set was reopened during the test"),
    ("aid_openings", "times a teaching aid (an image's strips) was opened: teaching page, quiz and test"),
    ("aid_s", "seconds the teaching aids were open in total (as measured in the browser)"),
    ("tab_hidden", "times the participant left the study's tab (or window) during teaching, quiz and test"),
    ("tab_hidden_s", "seconds away from the tab in total (as measured in the browser, for the returns recorded)"),
    ("breaks", "breaks taken"),
    ("browser", "the browser's user agent at consent"),
    ("screen", "screen size at consent, in CSS pixels (width x height)"),
    ("window", "browser window (viewport) size at consent, in CSS pixels (width x height)"),
    ("pixel_ratio", "device pixel ratio at consent (physical pixels per CSS pixel)"),
    ("pointer", "the finest pointer the device has: fine (mouse, trackpad), coarse (touch only) or none"),
    ("completion_code", "the code shown on the end page (screen-out code for the screened out)"),
]
EVENT_COLUMNS = [
    ("participant", "pseudonymous participant code"),
    ("condition", "assigned condition"),
    ("kind", "teaching_done, show_teaching_set (reopened), hide_teaching_set (closed again), open_aid (a teaching "
             "image's strips opened), close_aid (closed), tab_hidden (left the tab), tab_visible (came back), break"),
    ("phase", "phase the participant was in"),
    ("position", "trial index within the phase at the time of the event"),
    ("duration_ms", "as measured in the browser: hide_teaching_set and close_aid, how long it was open; tab_visible, "
                    "how long the tab was left; break, how long the break was"),
    ("at", "when the server stored the event (UTC)"),
]
TABLES = {"trials.csv": TRIAL_COLUMNS, "participants.csv": PARTICIPANT_COLUMNS, "events.csv": EVENT_COLUMNS}


@dataclass
class StudyData:
    trials: list[dict]
    participants: list[dict]
    events: list[dict]


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


def _code(session_id: int) -> str:
    return f"P{session_id:04d}"


def _size(environment: dict, what: str) -> str:
    width, height = environment.get(f"{what}_w"), environment.get(f"{what}_h")
    return f"{width}x{height}" if width and height else ""


def load_data(db: Database, design: StudyDesign, now: datetime | None = None) -> StudyData:
    """Every session, trial and event of the study, as table rows (one consistent snapshot)."""
    now = now or utcnow()
    with db.read() as conn:
        session_rows = conn.execute(
            sessions.select().where(sessions.c.study_id == design.uid).order_by(sessions.c.id)
        ).all()
        trial_rows = conn.execute(
            select(trials).join(sessions, trials.c.session_id == sessions.c.id)
            .where(sessions.c.study_id == design.uid).order_by(trials.c.session_id, trials.c.id)
        ).all()
        event_rows = conn.execute(
            select(events).join(sessions, events.c.session_id == sessions.c.id)
            .where(sessions.c.study_id == design.uid).order_by(events.c.session_id, events.c.id)
        ).all()
    by_id = {s.id: s for s in session_rows}
    try:
        mark = simulation_mark(design)
    except TeachsetError:  # no secrets.json: nobody can be told apart as simulated
        mark = None
    simulated = {s.id: int(is_simulated((s.environment or {}).get("user_agent"), mark)) for s in session_rows}
    source_ids = {s.token: s.source_id for s in design.test_pool + design.checks}
    check_kind = {s.token: "instructed" if design.settings.check_kind == "instructed" else "image" for s in design.checks}
    for condition in design.conditions:
        source_ids.update({s.token: s.source_id for s in condition.quiz})
    opened = Counter((e.session_id, e.phase, e.position) for e in event_rows if e.kind == "show_teaching_set")
    aid_opened = Counter((e.session_id, e.phase, e.position) for e in event_rows if e.kind == "open_aid")
    names = design.class_names

    trial_table = []
    quiz_length = {s.id: len(s.plan["quiz"]) for s in session_rows}
    for t in sorted(trial_rows, key=lambda t: (t.session_id, PHASE_ORDER[t.phase], t.trial_index)):
        session = by_id[t.session_id]
        server_rt = (t.answered_at - t.shown_at) / timedelta(milliseconds=1) if t.shown_at else None
        trial_table.append({
            "participant": _code(session.id), "condition": session.condition,
            "completed": int(session.phase == "done"), "simulated": simulated[session.id], "phase": t.phase,
            "check": check_kind.get(t.stimulus, ""),
            "trial": t.trial_index,
            "trial_overall": t.trial_index + (quiz_length[session.id] if t.phase == "test" else 0),
            "stimulus": t.stimulus, "item": t.item, "source_id": source_ids.get(t.stimulus) or "",
            "label": t.label, "label_name": names[t.label], "answer": t.answer, "answer_name": names[t.answer],
            "correct": int(bool(t.correct)), "rt_ms": t.rt_ms,
            "server_rt_ms": "" if server_rt is None else round(server_rt),
            "teaching_set_opened": opened[(session.id, t.phase, t.trial_index)],
            "aid_opened": aid_opened[(session.id, t.phase, t.trial_index)],
            "shown_at": _iso(t.shown_at), "answered_at": _iso(t.answered_at),
        })

    window = timedelta(minutes=design.assign_window_minutes)
    teaching_done = {e.session_id: e.at for e in event_rows if e.kind == "teaching_done"}
    trials_of: dict[str, list[dict]] = {}
    for t in trial_table:
        trials_of.setdefault(t["participant"], []).append(t)
    revisits = Counter()
    for (session_id, phase, _), count in opened.items():
        revisits[(session_id, phase)] += count
    kinds = Counter((e.session_id, e.kind) for e in event_rows)
    away, aid_ms = Counter(), Counter()
    for e in event_rows:
        if e.kind in ("tab_visible", "close_aid") and e.duration_ms is not None:
            (away if e.kind == "tab_visible" else aid_ms)[e.session_id] += e.duration_ms
    fast_ms = design.settings.fast_rt_ms
    participant_table = []
    for session in session_rows:
        mine = trials_of.get(_code(session.id), [])
        quiz = [t for t in mine if t["phase"] == "quiz"]
        test = [t for t in mine if t["phase"] == "test" and not t["check"]]
        checks = [t for t in mine if t["check"]]
        environment = session.environment or {}
        if session.phase == "screened_out":
            status = "screened_out"
        elif session.completed_at is not None:
            status = "completed"
        elif now - session.updated_at <= window:
            status = "in_progress"
        else:
            status = "abandoned"
        participant_table.append({
            "participant": _code(session.id), "condition": session.condition, "status": status,
            "simulated": simulated[session.id],
            "id_source": session.id_source, "participant_hash": session.participant_hash,
            "platform_study_id": session.platform_study_id or "", "platform_session_id": session.platform_session_id or "",
            "started_at": _iso(session.started_at), "completed_at": _iso(session.completed_at),
            "duration_s": "" if session.completed_at is None
            else round((session.completed_at - session.started_at).total_seconds(), 1),
            "teaching_s": "" if session.id not in teaching_done
            else round((teaching_done[session.id] - session.started_at).total_seconds(), 1),
            "quiz_trials": len(quiz),
            "quiz_accuracy": "" if not quiz else round(sum(t["correct"] for t in quiz) / len(quiz), 4),
            "test_trials": len(test), "test_correct": sum(t["correct"] for t in test),
            "test_accuracy": "" if not test else round(sum(t["correct"] for t in test) / len(test), 4),
            "median_rt_ms": "" if not test else round(median(t["rt_ms"] for t in test)),
            "fast_answers": sum(t["rt_ms"] < fast_ms for t in test),
            "checks": len(checks), "checks_failed": sum(not t["correct"] for t in checks),
            "revisits_quiz": revisits[(session.id, "quiz")], "revisits_test": revisits[(session.id, "test")],
            "aid_openings": kinds[(session.id, "open_aid")], "aid_s": round(aid_ms[session.id] / 1000, 1),
            "tab_hidden": kinds[(session.id, "tab_hidden")], "tab_hidden_s": round(away[session.id] / 1000, 1),
            "breaks": kinds[(session.id, "break")], "browser": environment.get("user_agent") or "",
            "screen": _size(environment, "screen"), "window": _size(environment, "window"),
            "pixel_ratio": environment.get("pixel_ratio") or "", "pointer": environment.get("pointer") or "",
            "completion_code": session.completion_code or "",
        })

    event_table = [{
        "participant": _code(e.session_id), "condition": by_id[e.session_id].condition, "kind": e.kind,
        "phase": e.phase, "position": e.position, "duration_ms": "" if e.duration_ms is None else e.duration_ms,
        "at": _iso(e.at),
    } for e in event_rows]
    return StudyData(trial_table, participant_table, event_table)


def data_dictionary() -> list[dict]:
    return [{"file": file, "column": column, "description": text}
            for file, columns in TABLES.items() for column, text in columns]


def csv_text(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def table_csv(data: StudyData, name: str) -> str:
    """One of trials.csv, participants.csv, events.csv, data_dictionary.csv as text."""
    if name == "data_dictionary.csv":
        return csv_text(data_dictionary(), ["file", "column", "description"])
    rows = {"trials.csv": data.trials, "participants.csv": data.participants, "events.csv": data.events}[name]
    return csv_text(rows, [column for column, _ in TABLES[name]])


def write_tables(data: StudyData, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in [*TABLES, "data_dictionary.csv"]:
        path = folder / name
        atomic_write_text(path, table_csv(data, name))
        paths.append(path)
    return paths
