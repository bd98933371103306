"""The study's state machine: the server, not the browser, decides what a participant does next.

    consent -> teaching -> quiz (each teaching image, unlabeled) -> test (with attention checks) -> done
                                                                     `-> screened_out (failed checks)

A session is made at consent: the condition is assigned there (the least filled among completed
and recently started sessions that are under the quota, inside the write transaction that inserts
the session, under a lock of the study row) and the plan is drawn (quiz and test orders, the
attention checks' places, from the study seed and the participant). A session belongs to the
browser that started it (a keyed hash of its browser cookie) unless the study allows other devices.
Each answer is one transaction: lock the session, store the trial row, advance. An answer is
accepted only for the trial the session is at; a repeat of a stored answer (a retried request) is
acknowledged again without a write; a different answer to a stored trial, an answer out of order,
and anything after the end are refused. The true label of a test image is never in a response.

A preview flow is the same machine under another study id: what a researcher does in preview
never reaches the participants' data, the assignment counts or the quotas.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, bindparam, delete, func, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from .aids import AID_EVENTS, load_aids
from .checks import place_checks
from .db import Database, events, sessions, studies, trials, utcnow
from .design import Stimulus, StudyDesign
from .identity import ParticipantId, new_session_token
from .texts import fill, plain

TRIAL_PHASES = ("quiz", "test")
ENDED = ("done", "screened_out")
EVENT_KINDS = ("show_teaching_set", "hide_teaching_set", "tab_hidden", "tab_visible", "break", *AID_EVENTS)
EVENT_PHASES = {"show_teaching_set": ("quiz", "test"), "hide_teaching_set": ("quiz", "test"), "break": ("test",),
                "tab_hidden": ("teaching", "quiz", "test"), "tab_visible": ("teaching", "quiz", "test"),
                "open_aid": ("teaching", "quiz", "test"), "close_aid": ("teaching", "quiz", "test")}
PAGE_OF_PHASE = {"teaching": "/teach", "quiz": "/trial", "test": "/trial", "done": "/done", "screened_out": "/done"}


# The statements of the answer path, built once: SQLAlchemy then skips building and hashing them per request.
SESSION_BY_TOKEN = sessions.select().where(sessions.c.token == bindparam("token"), sessions.c.study_id == bindparam("study"))
LOCK_SESSION = SESSION_BY_TOKEN.with_for_update()
STORED_TRIAL = trials.select().where(trials.c.session_id == bindparam("session"), trials.c.phase == bindparam("in_phase"),
                                     trials.c.trial_index == bindparam("trial"))
INSERT_TRIAL = trials.insert()
ADVANCE_SESSION = sessions.update().where(sessions.c.id == bindparam("session")).values(
    phase=bindparam("new_phase"), position=bindparam("new_position"), shown_at=bindparam("new_shown_at"),
    updated_at=bindparam("new_updated_at"), completed_at=bindparam("new_completed_at"),
    completion_code=bindparam("new_completion_code"),
)


class FlowError(Exception):
    """A request the state machine refuses: an HTTP status and a message a person can act on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class StudyFull(FlowError):
    """Every condition has reached its quota: no new session."""

    def __init__(self):
        super().__init__(200, "every condition of this study has all the participants it needs")


@dataclass(frozen=True)
class Answer:
    phase: str
    trial: int
    stimulus: str
    answer: int
    rt_ms: int


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: str
    duration_ms: int | None


@dataclass(frozen=True)
class Arrival:
    """What is known of a participant at consent, besides the id."""

    browser_hash: str | None = None  # keyed hash of the browser cookie
    platform_study_id: str | None = None  # Prolific STUDY_ID, MTurk hitId
    platform_session_id: str | None = None  # Prolific SESSION_ID, MTurk assignmentId
    environment: dict | None = None  # browser, screen and window size
    condition: str | None = None  # preview only: the condition to walk through


def owns(session: Row, session_token: str | None, browser_hash: str | None) -> bool:
    """Is this request from the browser that started `session`: its session cookie, or its browser cookie?"""
    if session_token is not None and secrets.compare_digest(session_token, session.token):
        return True
    return bool(browser_hash and session.browser_hash and secrets.compare_digest(browser_hash, session.browser_hash))


class StudyFlow:
    """Every state change of a participant's session, for one study (or its preview) on one database."""

    def __init__(self, design: StudyDesign, db: Database, participant_key: str, study_id: str | None = None):
        self.design = design
        self.db = db
        self.key = participant_key
        self.study_id = study_id or design.uid
        self.preview = self.study_id != design.uid
        self.stimuli: dict[str, Stimulus] = {s.token: s for s in design.test_pool + design.checks}
        for condition in design.conditions:
            self.stimuli.update({s.token: s for s in condition.quiz})
        self.check_tokens = frozenset(s.token for s in design.checks)
        self.aid_conditions = frozenset(load_aids(design))
        self.instructions = {}  # an instructed check's token -> what its trial says
        if design.settings.check_kind == "instructed":
            body = plain(design.texts.sections["check"])
            values = design.text_values()
            self.instructions = {s.token: fill(body, {**values, "class": f"“{design.display_names[s.label]}”"})
                                 for s in design.checks}

    # ---- reading -------------------------------------------------------------------------

    def session(self, token: str) -> Row | None:
        with self.db.read() as conn:
            return self._find(conn, token)

    def session_of(self, participant: ParticipantId) -> Row | None:
        with self.db.read() as conn:
            return conn.execute(
                sessions.select().where(sessions.c.study_id == self.study_id,
                                        sessions.c.participant_hash == participant.hashed(self.key))
            ).first()

    def is_full(self) -> bool:
        """Has every condition reached its quota (a preview never is)?"""
        if self.preview or self.design.settings.quota is None:
            return False
        with self.db.read() as conn:
            return not self._open_conditions(conn, utcnow())

    def state(self, session: Row) -> dict:
        """What the participant does now; for a trial, its stimulus (never its label)."""
        return self._state(session.phase, session.position, session.plan)

    def _state(self, phase: str, position: int, plan: dict) -> dict:
        state = {"phase": phase, "url": PAGE_OF_PHASE[phase]}
        if phase in TRIAL_PHASES:
            token = plan[phase][position]
            quiz = len(plan["quiz"])
            state.update(trial=position, total=len(plan[phase]), stimulus=token, image=f"/img/{token}.png",
                         step=position + (quiz if phase == "test" else 0), steps=quiz + len(plan["test"]))
            if token in self.instructions:
                state["instruction"] = self.instructions[token]
        return state

    # ---- writing -------------------------------------------------------------------------

    def start(self, participant: ParticipantId, arrival: Arrival = Arrival()) -> Row:
        """The participant's session: the existing one (one per participant id), or a new one;
        StudyFull where no condition has room."""
        participant_hash = participant.hashed(self.key)
        try:
            with self.db.write() as conn:
                # the study row lock serialises assignments on PostgreSQL (SQLite: BEGIN IMMEDIATE)
                conn.execute(select(studies.c.id).where(studies.c.id == self.study_id).with_for_update())
                existing = conn.execute(
                    sessions.select().where(sessions.c.study_id == self.study_id,
                                            sessions.c.participant_hash == participant_hash)
                ).first()
                if existing is not None:
                    return existing
                now = utcnow()
                condition = self._assign(conn, participant_hash, now, arrival.condition)
                values = dict(
                    study_id=self.study_id, token=new_session_token(), participant_hash=participant_hash,
                    id_source=participant.source, condition=condition, plan=self._plan(condition, participant_hash),
                    phase="teaching", position=0, shown_at=None, started_at=now, updated_at=now,
                    browser_hash=arrival.browser_hash, platform_study_id=arrival.platform_study_id,
                    platform_session_id=arrival.platform_session_id, environment=arrival.environment,
                )
                conn.execute(sessions.insert().values(**values))
                return self._find(conn, values["token"])
        except IntegrityError:  # a concurrent request of the same participant won (not reachable under the lock)
            existing = self.session_of(participant)
            if existing is None:
                raise
            return existing

    def finish_teaching(self, token: str) -> dict:
        with self.db.write() as conn:
            session = self._lock(conn, token)
            if session.phase == "teaching":
                now = utcnow()
                phase = "quiz" if session.plan["quiz"] else "test"
                conn.execute(sessions.update().where(sessions.c.id == session.id)
                             .values(phase=phase, position=0, shown_at=now, updated_at=now))
                conn.execute(events.insert().values(session_id=session.id, event_id="teaching_done",
                                                    kind="teaching_done", phase="teaching", position=0, at=now))
                session = self._find(conn, token)
            return self.state(session)

    def answer(self, token: str, answer: Answer) -> dict:
        with self.db.write() as conn:
            session = self._lock(conn, token)
            stored = conn.execute(STORED_TRIAL, {"session": session.id, "in_phase": answer.phase,
                                                 "trial": answer.trial}).first()
            if stored is not None:
                if stored.stimulus == answer.stimulus and stored.answer == answer.answer:
                    return self._answered(self.state(session), answer.phase, stored.stimulus, stored.correct,
                                          duplicate=True)
                raise FlowError(409, f"{answer.phase} trial {answer.trial} was already answered; reload the page to go on")
            if session.phase in ENDED:
                raise FlowError(409, "this session has ended: no more answers are accepted")
            if session.phase != answer.phase or session.position != answer.trial:
                where = f"{session.phase} trial {session.position}" if session.phase in TRIAL_PHASES else f"the {session.phase} page"
                raise FlowError(409, f"the session is at {where}, not {answer.phase} trial {answer.trial}; reload the page to go on")
            order = session.plan[session.phase]
            if answer.stimulus != order[session.position]:
                raise FlowError(400, "the stimulus does not match this trial; reload the page to go on")
            stimulus = self.stimuli[answer.stimulus]
            correct = answer.answer == stimulus.label
            now = utcnow()
            conn.execute(INSERT_TRIAL, {
                "session_id": session.id, "phase": answer.phase, "trial_index": answer.trial,
                "stimulus": answer.stimulus, "item": stimulus.item, "label": stimulus.label, "answer": answer.answer,
                "correct": correct, "rt_ms": answer.rt_ms, "shown_at": session.shown_at, "answered_at": now,
            })
            after = self._advance(session, now)
            if not correct and answer.stimulus in self.check_tokens and self._screened_out(conn, session):
                after = {**after, "phase": "screened_out", "position": 0, "shown_at": None, "completed_at": now,
                         "completion_code": self.design.settings.screen_out_code}
            conn.execute(ADVANCE_SESSION, {"session": session.id, **{f"new_{k}": v for k, v in after.items()}})
            return self._answered(self._state(after["phase"], after["position"], session.plan), answer.phase,
                                  answer.stimulus, correct, duplicate=False)

    def event(self, token: str, event: Event) -> dict:
        with self.db.write() as conn:
            session = self._lock(conn, token)
            stored = conn.execute(
                select(events.c.id).where(events.c.session_id == session.id, events.c.event_id == event.event_id)
            ).first()
            if stored is not None:
                return {"recorded": True, "duplicate": True}
            if session.phase in ENDED:
                raise FlowError(409, "this session has ended: no more events are accepted")
            allowed = EVENT_PHASES[event.kind]
            if event.kind in AID_EVENTS and session.condition not in self.aid_conditions:
                raise FlowError(409, f"'{event.kind}': the condition of this session has no teaching aids")
            if not self.design.settings.teaching_during_quiz:  # the teaching set (and its aids) is hidden in the quiz
                allowed = tuple(phase for phase in allowed if phase != "quiz" or event.kind not in
                                ("show_teaching_set", *AID_EVENTS))
            if session.phase not in allowed:
                raise FlowError(409, f"'{event.kind}' cannot happen during the {session.phase} phase of this study")
            conn.execute(events.insert().values(
                session_id=session.id, event_id=event.event_id, kind=event.kind, phase=session.phase,
                position=session.position, duration_ms=event.duration_ms, at=utcnow(),
            ))
            return {"recorded": True, "duplicate": False}

    def purge(self, older_than: timedelta) -> int:
        """Preview only: delete the preview sessions started longer ago than `older_than`; how many."""
        if not self.preview:
            raise ValueError("only preview sessions are ever deleted")
        old = select(sessions.c.id).where(sessions.c.study_id == self.study_id,
                                          sessions.c.started_at < utcnow() - older_than)
        with self.db.write() as conn:
            conn.execute(delete(trials).where(trials.c.session_id.in_(old)))
            conn.execute(delete(events).where(events.c.session_id.in_(old)))
            return conn.execute(delete(sessions).where(sessions.c.id.in_(old))).rowcount

    # ---- helpers -------------------------------------------------------------------------

    def _find(self, conn: Connection, token: str) -> Row | None:
        return conn.execute(SESSION_BY_TOKEN, {"token": token, "study": self.study_id}).first()

    def _lock(self, conn: Connection, token: str) -> Row:
        session = conn.execute(LOCK_SESSION, {"token": token, "study": self.study_id}).first()
        if session is None:
            raise FlowError(403, "unknown session; open the study link again")
        return session

    def _open_conditions(self, conn: Connection, now) -> dict[str, int]:
        """Condition -> sessions that fill it (completed, or started within the assignment window; never
        the screened out), for the conditions under their quota."""
        cutoff = now - timedelta(minutes=self.design.assign_window_minutes)
        rows = conn.execute(
            select(sessions.c.condition, func.count())
            .where(sessions.c.study_id == self.study_id, sessions.c.phase != "screened_out",
                   or_(sessions.c.completed_at.is_not(None), sessions.c.started_at >= cutoff))
            .group_by(sessions.c.condition)
        )
        counts = {name: 0 for name in self.design.condition_names}
        for condition, count in rows:
            if condition in counts:
                counts[condition] = count
        quota = self.design.settings.quota
        return counts if quota is None or self.preview else {k: v for k, v in counts.items() if v < quota}

    def _assign(self, conn: Connection, participant_hash: str, now, chosen: str | None) -> str:
        if chosen is not None and self.preview and chosen in self.design.condition_names:
            return chosen
        counts = self._open_conditions(conn, now)
        if not counts:
            raise StudyFull()
        least = min(counts.values())
        candidates = [name for name, count in counts.items() if count == least]
        return random.Random(f"{self.design.seed}:assign:{participant_hash}").choice(candidates)

    def _plan(self, condition: str, participant_hash: str) -> dict:
        rng = random.Random(f"{self.design.seed}:plan:{participant_hash}")
        quiz = [s.token for s in self.design.condition(condition).quiz]
        rng.shuffle(quiz)
        pool = [s.token for s in self.design.test_pool]
        if self.design.test_mode == "per_participant":
            test = rng.sample(pool, self.design.test_count)
        else:
            test = rng.sample(pool, len(pool))
        checks = [s.token for s in self.design.checks]
        if checks:
            test = place_checks(test, rng.sample(checks, self.design.settings.attention_checks), rng)
        return {"quiz": quiz, "test": test}

    def _screened_out(self, conn: Connection, session: Row) -> bool:
        """After a failed check (stored): has the session now failed enough checks to end?"""
        limit = self.design.settings.screen_out_after
        if not limit:
            return False
        failed = conn.execute(select(func.count()).select_from(trials).where(and_(
            trials.c.session_id == session.id, trials.c.stimulus.in_(self.check_tokens), trials.c.correct.is_(False)
        ))).scalar_one()
        return failed >= limit

    def _advance(self, session: Row, now) -> dict:
        """The session's columns after an answer: the next trial, the next phase, or done."""
        values = {"phase": session.phase, "position": session.position + 1, "shown_at": now, "updated_at": now,
                  "completed_at": None, "completion_code": None}
        if values["position"] < len(session.plan[session.phase]):
            return values
        if session.phase == "quiz" and session.plan["test"]:
            return {**values, "phase": "test", "position": 0}
        code = self.design.completion_code or secrets.token_hex(4).upper()
        return {**values, "phase": "done", "position": 0, "shown_at": None, "completed_at": now,
                "completion_code": code}

    def _answered(self, state: dict, phase: str, stimulus: str, correct: bool, duplicate: bool) -> dict:
        response = {"recorded": True, "duplicate": duplicate, "state": state}
        if phase == "quiz" and self.design.quiz_feedback:
            # a quiz image is a teaching image, whose label the teaching page shows anyway
            label = self.stimuli[stimulus].label
            response["feedback"] = {"correct": bool(correct), "label": self.design.display_names[label], "answer": label}
        return response
