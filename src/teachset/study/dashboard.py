"""The researcher dashboard: progress per condition, the data as CSV, and the preview, behind the
study's token.

    GET  /dashboard/login?token=...   (the link `study serve` prints) sets the dashboard cookie
    POST /dashboard/login             the same from a form
    GET  /dashboard                   progress per condition, the estimated and the real duration
    GET  /dashboard/export/<name>     trials.csv, participants.csv, events.csv, data_dictionary.csv
    GET  /dashboard/preview[?token=...][&condition=NAME]  walk through the study as a participant
                                      would; nothing is stored with the participants' data
    GET  /preview/exit                leave the preview

The cookie holds an HMAC of the token, not the token; scripts may instead send
`Authorization: Bearer <token>`. Wrong tokens are rate limited per address (ratelimit.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from datetime import timedelta
from statistics import median

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .db import utcnow
from .design import study_warnings
from .export import TABLES, load_data, table_csv
from .validate import BadRequest, parse_form
from .web import PREVIEW_COOKIE, PREVIEW_MAX_AGE_S, SESSION_COOKIE, StudyContext, read_body, redirect, set_cookie

DASHBOARD_COOKIE = "teachset_dashboard"
EXPORTS = [*TABLES, "data_dictionary.csv"]
PREVIEW_KEPT = timedelta(hours=24)  # older preview sessions are deleted when a preview starts


def _cookie_value(ctx: StudyContext) -> str:
    return hmac.new(bytes.fromhex(ctx.key), b"dashboard:" + ctx.dashboard_token.encode(), hashlib.sha256).hexdigest()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_right(request: Request, token: str) -> bool:
    """Is `token` the dashboard token? A wrong one counts against the address; an address with too
    many wrong ones is refused (429) whatever it sends."""
    ctx: StudyContext = request.app.state.ctx
    wait = ctx.limiter.retry_after(_client(request))
    if wait:
        raise BadRequest(f"too many wrong dashboard tokens from this address; try again in {wait} s", status=429,
                         retry_after=wait)
    if hmac.compare_digest(token.encode(), ctx.dashboard_token.encode()):
        return True
    ctx.limiter.failed(_client(request))
    return False


def authorized(request: Request) -> bool:
    ctx: StudyContext = request.app.state.ctx
    cookie = request.cookies.get(DASHBOARD_COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), _cookie_value(ctx).encode()):
        return True
    header = request.headers.get("authorization", "")
    return header.lower().startswith("bearer ") and _token_right(request, header[7:].strip())


def _logged_in(ctx: StudyContext, to: str = "/dashboard") -> Response:
    response = redirect(to)
    response.set_cookie(DASHBOARD_COOKIE, _cookie_value(ctx), max_age=12 * 3600, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/dashboard")
    return response


async def login(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    if request.method == "POST":
        token = parse_form(await read_body(request)).get("token", "")
    else:
        token = request.query_params.get("token", "")
    if token and _token_right(request, token):
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
            "started": sum(status[(condition.name, s)] for s in ("completed", "in_progress", "abandoned", "screened_out")),
            "in_progress": status[(condition.name, "in_progress")], "abandoned": status[(condition.name, "abandoned")],
            "completed": status[(condition.name, "completed")], "screened_out": status[(condition.name, "screened_out")],
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
                      dataset=design.dataset["name"], test_count=design.test_count, settings=design.settings,
                      test_mode="the same images for everyone" if design.test_mode == "shared" else "drawn per participant",
                      minutes=design.estimated_minutes, warnings=study_warnings(design),
                      conditions=design.condition_names, now=utcnow().isoformat(timespec="seconds"))


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


async def preview(request: Request) -> Response:
    """Start a preview: from now on this browser walks the study on the preview flow."""
    ctx: StudyContext = request.app.state.ctx
    token = request.query_params.get("token", "")
    if not authorized(request) and not (token and _token_right(request, token)):
        return ctx.render("dashboard_login.html", status=403 if token else 200, failed=bool(token))
    condition = request.query_params.get("condition", "")
    if condition and condition not in ctx.design.condition_names:
        raise BadRequest(f"no condition named '{condition[:40]}'; choose one of {', '.join(ctx.design.condition_names)}")
    await run_in_threadpool(ctx.preview_flow.purge, PREVIEW_KEPT)
    response = _logged_in(ctx, "/") if token else redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return set_cookie(response, PREVIEW_COOKIE, ctx.preview_cookie(condition), ctx.secure_cookies, PREVIEW_MAX_AGE_S)


async def preview_exit(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    response = ctx.render("message.html", heading="Preview closed", message="You have left the preview. Open the "
                          "dashboard to start another one.")
    response.delete_cookie(PREVIEW_COOKIE, path="/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def routes() -> list[Route]:
    return [
        Route("/dashboard/login", login, methods=["GET", "POST"]),
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard/export/{name}", export, methods=["GET"]),
        Route("/dashboard/preview", preview, methods=["GET"]),
        Route("/preview/exit", preview_exit, methods=["GET"]),
    ]
