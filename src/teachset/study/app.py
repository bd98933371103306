"""The study's web application (Starlette): participant pages, the JSON API, images, the dashboard.

    GET  /               consent page (or back to where this participant is)
    POST /consent        agree: the session is made, the condition assigned; -> /teach
    GET  /teach          the teaching set with labels, classes as rows
    POST /teach/done     -> /trial
    GET  /trial          the quiz and the test (study.js drives it through the API)
    GET  /done           the completion code
    GET  /api/state      where the session is: phase, trial, the stimulus to show
    POST /api/answer     {phase, trial, stimulus, answer, rt_ms} -> stored once; the next state
    POST /api/event      {event_id, kind, duration_ms?}: teaching set reopened / closed
    GET  /img/<token>.png  a stimulus (tokens are random: a URL tells nothing about a class)
    GET  /dashboard ...  see dashboard.py

The session is an HttpOnly, SameSite=Lax cookie holding a random token; the API takes JSON only
(a cross-site form cannot post it). Every input is validated (validate.py) and every refusal is a
4xx with a message; pages are Jinja templates with autoescaping, so nothing a participant sends
is rendered as HTML. Database work runs in the thread pool.
"""

from __future__ import annotations

import logging
import secrets
from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from sqlalchemy.engine import Row

from . import dashboard
from .db import Database
from .design import StudyDesign
from .flow import FlowError, StudyFlow
from .identity import ID_PARAMETERS, TOKEN, InvalidParticipant, ParticipantId, is_mturk_preview, participant_from_query
from .validate import BadRequest, parse_answer, parse_event, parse_form
from .web import (PAGES, SESSION_COOKIE, StudyContext, json_error, page_environment, read_body, redirect,
                  session_token, with_session_cookie)

log = logging.getLogger("teachset.study")
VISIT = "visit"  # hidden consent-form field: makes an anonymous double submission one session
PARAMETER_OF_SOURCE = {source: parameter for parameter, source in ID_PARAMETERS}
NEEDS_ID = "This study needs your participant id in the link; open it from the recruiting platform's page."
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
]
PHASE_TEXT = {
    "quiz": {"title": "Quiz", "text": "Now you will see each example image again, alone and without its label. "
             "Click the name of its class. You will be told whether you were right."},
    "test": {"title": "Test", "text": "Now you will see new images. Click the name of the class each one belongs to. "
             "You will not be told whether you were right. You can still look at the teaching set."},
}


# ---- participant pages -------------------------------------------------------------------------

async def entry(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    query = request.query_params
    if is_mturk_preview(query):
        return ctx.message("Preview", "Accept the HIT to take part; the study starts once you have accepted it.")
    try:
        participant = participant_from_query(query)
    except InvalidParticipant as error:
        return ctx.message("This link does not work", str(error), status=400)
    session = None
    if participant is not None:
        session = await run_in_threadpool(ctx.flow.session_of, participant)
    elif request.cookies.get(SESSION_COOKIE) and TOKEN.fullmatch(request.cookies[SESSION_COOKIE]):
        session = await run_in_threadpool(ctx.flow.session, request.cookies[SESSION_COOKIE])
    if session is not None:
        return with_session_cookie(redirect(ctx.flow.state(session)["url"]), session.token, ctx.secure_cookies)
    if participant is None and ctx.design.require_participant_id:
        return ctx.message("This link does not work", NEEDS_ID, status=400)
    hidden = {VISIT: secrets.token_urlsafe(18)}
    if participant is not None:  # carried to /consent: the one id that was read and checked
        hidden[PARAMETER_OF_SOURCE[participant.source]] = participant.value
    paragraphs = [p.strip() for p in ctx.design.consent.split("\n\n") if p.strip()]
    return ctx.render("consent.html", study_name=ctx.design.name, paragraphs=paragraphs, hidden=hidden)


async def consent(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    form = parse_form(await read_body(request))
    try:
        participant = participant_from_query(form)
    except InvalidParticipant as error:
        return ctx.message("This link does not work", str(error), status=400)
    if form.get("consent") != "yes":
        return ctx.message("No consent given", "You did not agree to take part, so nothing was recorded. "
                           "You may close this page.")
    if participant is None:
        if ctx.design.require_participant_id:
            return ctx.message("This link does not work", NEEDS_ID, status=400)
        visit = form.get(VISIT, "")
        if not TOKEN.fullmatch(visit):
            return ctx.message("Please start again", "The form was incomplete; open the study link again.", status=400)
        participant = ParticipantId("anonymous", visit)
    session = await run_in_threadpool(ctx.flow.start, participant)
    return with_session_cookie(redirect(ctx.flow.state(session)["url"]), session.token, ctx.secure_cookies)


async def current_session(request: Request) -> Row:
    """The session of the request's cookie; 401/400/403 if there is none, a malformed one, an unknown one."""
    ctx: StudyContext = request.app.state.ctx
    token = session_token(request)
    session = await run_in_threadpool(ctx.flow.session, token)
    if session is None:
        raise FlowError(403, "unknown session; open the study link again")
    return session


async def teaching(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    session = await current_session(request)
    if session.phase != "teaching":
        return redirect(ctx.flow.state(session)["url"])
    return ctx.render("teaching.html", rows=ctx.teaching_rows(session.condition), pixelated=ctx.pixelated)


async def teaching_done(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    await read_body(request)
    state = await run_in_threadpool(ctx.flow.finish_teaching, session_token(request))
    return redirect(state["url"])


async def trial(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    session = await current_session(request)
    state = ctx.flow.state(session)
    if session.phase not in ("quiz", "test"):
        return redirect(state["url"])
    return ctx.render("trial.html", state=state, phase_text=PHASE_TEXT, class_names=ctx.design.class_names,
                      rows=ctx.teaching_rows(session.condition), pixelated=ctx.pixelated)


async def done(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    session = await current_session(request)
    if session.phase != "done":
        return redirect(ctx.flow.state(session)["url"])
    prolific = None
    if session.id_source == "prolific":
        prolific = f"https://app.prolific.com/submissions/complete?cc={session.completion_code}"
    return ctx.render("done.html", code=session.completion_code, prolific_url=prolific)


# ---- the JSON API ----------------------------------------------------------------------------

def _require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json", status=415)


async def api_state(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    session = await current_session(request)
    return JSONResponse(ctx.flow.state(session), headers={"cache-control": "no-store"})


async def api_answer(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    _require_json(request)
    token = session_token(request)
    answer = parse_answer(await read_body(request), len(ctx.design.class_names))
    result = await run_in_threadpool(ctx.flow.answer, token, answer)
    return JSONResponse(result, headers={"cache-control": "no-store"})


async def api_event(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    _require_json(request)
    token = session_token(request)
    event = parse_event(await read_body(request))
    result = await run_in_threadpool(ctx.flow.event, token, event)
    return JSONResponse(result, headers={"cache-control": "no-store"})


# ---- files ---------------------------------------------------------------------------------

async def image(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    name = request.path_params["name"]
    data = ctx.images.get(name[:-4]) if name.endswith(".png") else None
    if data is None:
        raise HTTPException(404)
    return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=86400"})


async def static(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    found = ctx.static.get(request.path_params["name"])
    if found is None:
        raise HTTPException(404)
    return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


# ---- errors and headers ----------------------------------------------------------------------

def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/dashboard/export/"))


def _refusal(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return json_error(status, message)
    ctx: StudyContext = request.app.state.ctx
    return ctx.message("Sorry", message, status=status)


async def on_flow_error(request: Request, error: FlowError) -> Response:
    return _refusal(request, error.status, error.message)


async def on_bad_request(request: Request, error: BadRequest) -> Response:
    response = _refusal(request, error.status, error.message)
    if error.status == 413:  # the unread rest of the body would be taken for the next request
        response.headers["connection"] = "close"
    return response


async def on_http_error(request: Request, error: HTTPException) -> Response:
    messages = {404: "there is no such page", 405: "this method is not allowed here"}
    return _refusal(request, error.status_code, messages.get(error.status_code, str(error.detail)))


async def on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _refusal(request, 500, "the server had a problem; please try again in a moment")


class SecurityHeaders:
    """Adds the same security headers to every response (plain ASGI, no per-request task)."""

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def create_app(design: StudyDesign, db: Database, secure_cookies: bool = False) -> Starlette:
    """The ASGI application for one study on one database (schema made if missing)."""
    keys = design.secrets()
    db.create_schema()
    db.ensure_study(design.uid, design.name)
    ctx = StudyContext(
        design=design,
        db=db,
        flow=StudyFlow(design, db, keys["participant_key"]),
        pages=page_environment(),
        images={token: path.read_bytes() for token, path in design.stimulus_files().items()},
        static={"study.css": ((PAGES / "static" / "study.css").read_bytes(), "text/css"),
                "study.js": ((PAGES / "static" / "study.js").read_bytes(), "text/javascript")},
        dashboard_token=keys["dashboard_token"],
        key=keys["participant_key"],
        secure_cookies=secure_cookies,
    )
    routes = [
        Route("/", entry, methods=["GET"]),
        Route("/consent", consent, methods=["POST"]),
        Route("/teach", teaching, methods=["GET"]),
        Route("/teach/done", teaching_done, methods=["POST"]),
        Route("/trial", trial, methods=["GET"]),
        Route("/done", done, methods=["GET"]),
        Route("/api/state", api_state, methods=["GET"]),
        Route("/api/answer", api_answer, methods=["POST"]),
        Route("/api/event", api_event, methods=["POST"]),
        Route("/img/{name}", image, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        *dashboard.routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={FlowError: on_flow_error, BadRequest: on_bad_request, HTTPException: on_http_error,
                            Exception: on_unexpected},
    )
    app.state.ctx = ctx
    app.add_middleware(SecurityHeaders)
    return app
