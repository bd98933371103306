"""Helpers for the study's tests and benchmark: a throwaway PostgreSQL server on loopback and a
study server run as a real process (so it can be killed with SIGKILL).

PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` user (the
Debian package makes it) and its commands run through runuser. The data folder is made fresh
under /tmp and removed at the end; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl, or those on PATH."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.findall(r"\d+", p)[0]), reverse=True)
    for folder in folders:
        if os.access(Path(folder) / "initdb", os.X_OK) and os.access(Path(folder) / "pg_ctl", os.X_OK):
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return Path(initdb).parent if initdb and pg_ctl else None


class LocalPostgres:
    """`with LocalPostgres() as base_url:` a fresh cluster on 127.0.0.1; `create_database()` per use."""

    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or postgres_bin()
        if self.bindir is None:
            raise FileNotFoundError("PostgreSQL is not installed (initdb, pg_ctl); scripts/study_system_deps.sh installs it")
        self.root: Path | None = None
        self.port = 0
        self._as_postgres: list[str] = []

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, timeout=timeout)

    def __enter__(self) -> str:
        self.root = Path(tempfile.mkdtemp(prefix="teachset-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        data, self.port = self.root / "data", free_port()
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                   "-c shared_buffers=64MB")
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                      "-o", options, "start")
        except subprocess.CalledProcessError:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}") from None
        return self.url

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        if self.root is None:
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def create_database(self, name: str) -> str:
        self._admin(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        import psycopg

        if not re.fullmatch(r"(CREATE|DROP) DATABASE (IF EXISTS )?[a-z_][a-z0-9_]*( WITH \(FORCE\))?", sql):
            raise ValueError(sql)
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(sql)


@dataclass
class ServerProcess:
    """`python -m teachset.study serve` as a child process, at `url`."""

    process: subprocess.Popen
    url: str
    output: list[str]

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, nothing."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(study: Path, database_url: str, threads: int = 16, timeout: float = 60) -> ServerProcess:
    """Start serving `study` on a free loopback port; returns once the address is printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "teachset.study", "serve", str(study), "--database", database_url, "--port", "0",
         "--threads", str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    output: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            match = re.match(r"listening on (\S+):(\d+)", line)
            if match:
                found["url"] = f"http://{match.group(1)}:{match.group(2)}"
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or "url" not in found:
        process.kill()
        process.wait(timeout=20)
        raise RuntimeError("the study server did not start:\n" + "".join(output))
    return ServerProcess(process, found["url"], output)
