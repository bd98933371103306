"""The researcher dashboard: progress per condition and the data as CSV, behind the study's token.

    GET  /dashboard/login?token=...   (the link `study serve` prints) sets the dashboard cookie
    POST /dashboard/login             the same from a form
    GET  /dashboard                   progress per condition
    GET  /dashboard/export/<name>     trials.csv, participants.csv, events.csv, data_dictionary.csv

The cookie holds an HMAC of the token, not the token; scripts may instead send
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from statistics import median

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .db import utcnow
from .export import TABLES, load_data, table_csv
from .validate import BadRequest, parse_form
from .web import StudyContext, read_body, redirect

DASHBOARD_COOKIE = "teachset_dashboard"
EXPORTS = [*TABLES, "data_dictionary.csv"]


def _cookie_value(ctx: StudyContext) -> str:
    return hmac.new(bytes.fromhex(ctx.key), b"dashboard:" + ctx.dashboard_token.encode(), hashlib.sha256).hexdigest()


def _token_ok(ctx: StudyContext, token: str) -> bool:
    return hmac.compare_digest(token.encode(), ctx.dashboard_token.encode())


def authorized(request: Request) -> bool:
    ctx: StudyContext = request.app.state.ctx
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and _token_ok(ctx, header[7:].strip()):
        return True
    cookie = request.cookies.get(DASHBOARD_COOKIE, "")
    return hmac.compare_digest(cookie.encode(), _cookie_value(ctx).encode())


def _logged_in(ctx: StudyContext) -> Response:
    response = redirect("/dashboard")
    response.set_cookie(DASHBOARD_COOKIE, _cookie_value(ctx), max_age=12 * 3600, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/dashboard")
    return response


async def login(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    if request.method == "POST":
        token = parse_form(await read_body(request)).get("token", "")
    else:
        token = request.query_params.get("token", "")
    if token and _token_ok(ctx, token):
        return _logged_in(ctx)
    return ctx.render("dashboard_login.html", status=403 if token else 200, failed=bool(token))


def _progress(ctx: StudyContext) -> list[dict]:
    data = load_data(ctx.db, ctx.design)
    status = Counter((p["condition"], p["status"]) for p in data.participants)
    rows = []
    for condition in ctx.design.conditions:
        minutes = [p["duration_s"] / 60 for p in data.participants
                   if p["condition"] == condition.name and p["status"] == "completed"]
        rows.append({
            "name": condition.name, "method": condition.method, "size": len(condition.teach),
            "started": sum(status[(condition.name, s)] for s in ("completed", "in_progress", "abandoned")),
            "in_progress": status[(condition.name, "in_progress")], "abandoned": status[(condition.name, "abandoned")],
            "completed": status[(condition.name, "completed")],
            "minutes": f"{median(minutes):.1f}" if minutes else "",
        })
    return rows


async def dashboard(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    if not authorized(request):
        return redirect("/dashboard/login")
    rows = await run_in_threadpool(_progress, ctx)
    design = ctx.design
    return ctx.render("dashboard.html", study_name=design.name, rows=rows, exports=EXPORTS,
                      dataset=design.dataset["name"], test_count=design.test_count,
                      test_mode="the same images for everyone" if design.test_mode == "shared" else "drawn per participant",
                      now=utcnow().isoformat(timespec="seconds"))


async def export(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    if not authorized(request):
        raise BadRequest("the dashboard needs its token: open the dashboard link or send Authorization: Bearer <token>",
                         status=401)
    name = request.path_params["name"]
    if name not in EXPORTS:
        raise BadRequest(f"no export named '{name[:40]}'; choose one of {', '.join(EXPORTS)}", status=404)
    data = await run_in_threadpool(load_data, ctx.db, ctx.design)
    return Response(table_csv(data, name), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/dashboard/login", login, methods=["GET", "POST"]),
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard/export/{name}", export, methods=["GET"]),
    ]
