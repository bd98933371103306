"""The study database: four tables, one code path for SQLite and PostgreSQL (SQLAlchemy Core).

    studies   one row per study (the row that condition assignment locks)
    sessions  one per participant: hashed participant id, condition, plan (stimulus orders),
              where they are (phase, position), timestamps, completion code, the keyed hash of
              the browser cookie it belongs to, the platform's study and session ids, and the
              browser's environment (user agent, screen and window size)
    trials    one per answer: phase, trial index, stimulus, true label, answer, correct,
              response time, shown/answered timestamps; unique per (session, phase, trial)
    events    one per logged event (teaching set reopened or closed, tab left or back, a break,
              teaching done); unique per (session, event_id) so a retried request is stored once

SQLite runs in WAL mode with a busy timeout and synchronous=FULL (an acknowledged answer survives
a crash of the server, and of the machine); a write transaction starts with BEGIN IMMEDIATE so that
a read-then-write (assignment, answer) cannot interleave with another process's, and writes of
this process take a lock first instead of spinning on SQLite's busy handler. PostgreSQL gets
row locks (SELECT ... FOR UPDATE) in the same statements; SQLite ignores them.
All timestamps are naive UTC.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from ..errors import OptionError, TeachsetError

SQLITE_BUSY_TIMEOUT_MS = 15_000

metadata = MetaData()

studies = Table(
    "studies",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), ForeignKey("studies.id"), nullable=False),
    Column("token", String(64), nullable=False, unique=True),
    Column("participant_hash", String(64), nullable=False),
    Column("id_source", String(16), nullable=False),
    Column("condition", String(40), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Column("shown_at", DateTime, nullable=True),
    Column("started_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("completed_at", DateTime, nullable=True),
    Column("completion_code", String(64), nullable=True),
    # added in format 2 (create_schema adds them to an older database)
    Column("browser_hash", String(64), nullable=True),
    Column("platform_study_id", String(64), nullable=True),
    Column("platform_session_id", String(64), nullable=True),
    Column("environment", JSON, nullable=True),
    UniqueConstraint("study_id", "participant_hash", name="one_session_per_participant"),
)
ADDED_SESSION_COLUMNS = ("browser_hash", "platform_study_id", "platform_session_id", "environment")
Index("sessions_by_study_condition", sessions.c.study_id, sessions.c.condition)

trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id"), nullable=False),
    Column("phase", String(8), nullable=False),
    Column("trial_index", Integer, nullable=False),
    Column("stimulus", String(32), nullable=False),
    Column("item", Integer, nullable=False),
    Column("label", Integer, nullable=False),
    Column("answer", Integer, nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("rt_ms", Integer, nullable=False),
    Column("shown_at", DateTime, nullable=True),
    Column("answered_at", DateTime, nullable=False),
    UniqueConstraint("session_id", "phase", "trial_index", name="one_answer_per_trial"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Column("duration_ms", Integer, nullable=True),
    Column("at", DateTime, nullable=False),
    UniqueConstraint("session_id", "event_id", name="one_row_per_event"),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def normalize_url(url: str) -> str:
    """Accept the usual spellings: postgres://, postgresql:// (-> psycopg 3), sqlite:///path."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("teachset_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An engine plus transaction helpers: `with db.write() as conn:` / `with db.read() as conn:`.
    `with Database(url) as db:` closes it at the end."""

    def __init__(self, url: str, pool_size: int = 8):
        url = normalize_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise TeachsetError(
                f"'{url}' is not a database URL; use sqlite:///path/file.sqlite or postgresql://user@host:5432/db"
            ) from None
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if not parsed.database or parsed.database == ":memory:":
                raise TeachsetError("give SQLite a file (sqlite:///path/file.sqlite): an in-memory database is lost on exit")
            engine = create_engine(parsed, pool_size=pool_size, max_overflow=2 * pool_size,
                                   connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        elif parsed.get_backend_name() == "postgresql":
            try:
                engine = create_engine(parsed, pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True)
            except ImportError as error:
                raise TeachsetError(f"PostgreSQL needs the psycopg package ({error}); pip install 'psycopg[binary]'") from None
        else:
            raise TeachsetError(f"database '{parsed.get_backend_name()}' is not supported; use SQLite or PostgreSQL")
        self.engine: Engine = engine
        self._write_lock = threading.Lock() if self.is_sqlite else None

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
            self._add_missing_columns()
        except OperationalError as error:
            raise TeachsetError(
                f"cannot open database {self.describe()} ({str(error.orig).strip()}); check the URL, that the server "
                "runs and that the user may create tables"
            ) from None

    def _add_missing_columns(self) -> None:
        """A database made by an older teachset lacks the newer nullable session columns: add them."""
        present = {c["name"] for c in inspect(self.engine).get_columns("sessions")}
        for name in ADDED_SESSION_COLUMNS:
            if name not in present:
                kind = sessions.c[name].type.compile(dialect=self.engine.dialect)
                try:
                    with self.write() as conn:
                        conn.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {name} {kind}")
                except (OperationalError, ProgrammingError):  # another server process added it first
                    if name not in {c["name"] for c in inspect(self.engine).get_columns("sessions")}:
                        raise

    def require_schema(self) -> None:
        """For readers (analysis): a clear error where there are no study tables to read."""
        if self.is_sqlite and not os.path.exists(self.url.database):
            raise OptionError("database", f"there are no responses yet: '{self.url.database}' does not exist; "
                              "serve the study first, or give as {option} the database it was served with")
        try:
            present = inspect(self.engine).has_table("trials")
        except OperationalError as error:
            raise TeachsetError(f"cannot open database {self.describe()} ({str(error.orig).strip()}); "
                                "check the URL and that the server runs") from None
        if not present:
            raise OptionError("database", f"database {self.describe()} has no study tables; give as {{option}} the "
                              "database the study was served with")
        self._add_missing_columns()

    def ensure_study(self, uid: str, name: str) -> None:
        with self.write() as conn:
            if conn.execute(studies.select().where(studies.c.id == uid)).first() is None:
                conn.execute(studies.insert().values(id=uid, name=name, created_at=utcnow()))

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed on success; on SQLite one at a time per process."""
        if self._write_lock is not None:
            with self._write_lock, self.engine.connect() as conn:
                conn.execution_options(teachset_write=True)
                with conn.begin():
                    yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both databases)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
