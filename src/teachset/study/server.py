"""Serving a study: bind the socket, print the links, run uvicorn until Ctrl-C.

The socket is bound before uvicorn starts, so `--port 0` works (the system picks a free port) and
the printed links are right. One process; the database does the locking, so more than one
server may share a PostgreSQL database (or, more slowly, an SQLite file).
"""

from __future__ import annotations

import socket
import sys
from urllib.parse import quote

from ..errors import OptionError
from .db import Database
from .design import StudyDesign

PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def bind(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise OptionError("host", f"{{option}} '{host}' cannot be resolved ({error}); use an address such as 127.0.0.1") from None
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets (else replies can wait on delayed ACKs)
    sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as error:
        sock.close()
        raise OptionError("port", f"cannot listen on {host}:{port} ({error.strerror}); choose another {{option}} "
                          "(0: any free one)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def links(design: StudyDesign, base: str) -> dict[str, str]:
    token = design.secrets()["dashboard_token"]
    base = base.rstrip("/")
    return {
        "participant": f"{base}/",
        "prolific": f"{base}/?{PROLIFIC_QUERY}",
        "with_id": f"{base}/?participant=ID",
        "dashboard": f"{base}/dashboard/login?token={quote(token)}",
        "preview": f"{base}/dashboard/preview?token={quote(token)}",
    }


def serve(design: StudyDesign, database_url: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          public_url: str | None = None, access_log: bool = False, threads: int = 16) -> None:
    """Serve `design` until interrupted, printing the participant and dashboard links first.
    The database: `database_url`, else $TEACHSET_STUDY_DATABASE, else the study's SQLite file."""
    import anyio.to_thread
    import uvicorn

    from .app import create_app

    db = Database(design.database_url(database_url), pool_size=min(threads, 20))
    app = create_app(design, db, secure_cookies=bool(public_url and public_url.startswith("https://")))
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    base = public_url or f"http://{shown_host}:{bound_port}"
    found = links(design, base)
    print(f"study '{design.name}': {len(design.conditions)} condition(s), database {db.describe()}")
    print(f"participant link: {found['participant']}")
    print(f"  from Prolific:  {found['prolific']}")
    print(f"  with an id:     {found['with_id']}  (one session per id; MTurk's workerId= works too)")
    print(f"dashboard link:   {found['dashboard']}")
    print(f"preview link:     {found['preview']}  (walk through the study; nothing is stored with the data)")
    print(f"listening on {shown_host}:{bound_port}; stop with Ctrl-C", flush=True)
    sys.stdout.flush()

    config = uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="off",
                            timeout_keep_alive=30, proxy_headers=bool(public_url))
    server = uvicorn.Server(config)

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        await server.serve(sockets=[sock])

    try:
        anyio.run(main)
    finally:
        db.close()
        sock.close()
