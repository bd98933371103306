"""The participant's pages and JSON API (app.py mounts them):

    GET  /               consent page (or back to where this browser's participant is)
    POST /consent        agree: the session is made, the condition assigned; -> /instructions
    GET  /instructions   the researcher's instructions; -> /teach
    GET  /teach          the teaching set with labels, classes as rows; each image opens large, and
                         in a condition with teaching aids (aids.py) its strips open from a button
    POST /teach/done     -> /trial
    GET  /trial          the quiz and the test (study.js drives it through the API)
    GET  /done           the debrief and the completion code (or the screen-out page)
    GET  /api/state      where the session is: phase, trial, progress, the stimulus to show
    POST /api/answer     {phase, trial, stimulus, answer, rt_ms} -> stored once; the next state
    POST /api/event      {event_id, kind, duration_ms?}: teaching set reopened or closed, a teaching
                         aid opened or closed, tab left or back, a break taken

A participant id in the link finds its session only from the browser that started it (its
session or browser cookie) unless the study allows other devices; any other browser gets a page
that says so, never the session or its completion code. A preview (the preview cookie, set from
the dashboard) runs the same pages on the preview flow.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from sqlalchemy.engine import Row

from .flow import ENDED, Arrival, FlowError, StudyFlow, StudyFull, owns
from .identity import (ID_PARAMETERS, REF_PARAMETERS, TOKEN, InvalidParticipant, ParticipantId, is_mturk_preview,
                       new_session_token, participant_from_query, platform_refs)
from .validate import BadRequest, looks_mobile, parse_answer, parse_environment, parse_event, parse_form
from .web import (BROWSER_COOKIE, StudyContext, cookie_token, read_body, redirect, session_token, set_cookie,
                  with_session_cookie)

VISIT = "visit"  # hidden consent-form field: makes an anonymous double submission one session
PARAMETER_OF_SOURCE = {source: parameter for parameter, source in ID_PARAMETERS}
NEEDS_ID = "This study needs your participant id in the link; open it from the recruiting platform's page."
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
RETURN = " If you came from Prolific, please return your submission there."
FULL = ("This study is full", "Thank you for your interest: the study already has all the participants it needs."
        + RETURN)
DESKTOP = ("This study needs a computer", "Please open the study link on a desktop or laptop computer: the study does "
           "not work on phones and tablets." + RETURN)
ELSEWHERE = ("This study is open in another browser", "You started this study in another browser or on another "
             "device. Please go on there: your answers so far are saved. If you cannot, contact the researcher.")
ENDED_ELSEWHERE = ("You have already taken part", "This participant id has already finished the study in another "
                   "browser or on another device.")


def _ctx(request: Request) -> StudyContext:
    return request.app.state.ctx


def _resume(ctx: StudyContext, request: Request, session: Row, browser_hash: str | None) -> Response:
    """To where `session` is, if this browser owns it (or the study lets any browser resume)."""
    if not (owns(session, cookie_token(request), browser_hash) or ctx.design.settings.allow_other_device):
        heading, text = ENDED_ELSEWHERE if session.phase in ENDED else ELSEWHERE
        return ctx.message(heading, text, status=409, request=request)
    return with_session_cookie(redirect(ctx.flow_for(request).state(session)["url"]), session.token, ctx.secure_cookies)


async def entry(request: Request) -> Response:
    ctx = _ctx(request)
    flow = ctx.flow_for(request)
    query = request.query_params
    if is_mturk_preview(query):
        return ctx.message("Preview", "Accept the HIT to take part; the study starts once you have accepted it.")
    try:
        participant = participant_from_query(query)
        refs = platform_refs(query, participant)
    except InvalidParticipant as error:
        return ctx.message("This link does not work", str(error), status=400, request=request)
    browser = cookie_token(request, BROWSER_COOKIE)
    new_browser = browser is None
    browser = browser or new_session_token()
    session, token = None, cookie_token(request)
    if participant is not None:
        session = await run_in_threadpool(flow.session_of, participant)
    elif token is not None:
        session = await run_in_threadpool(flow.session, token)
    settings = ctx.design.settings
    if session is not None:
        response = _resume(ctx, request, session, ctx.browser_hash(browser))
    elif participant is None and settings.requires_id and not flow.preview:
        response = ctx.message("This link does not work", NEEDS_ID, status=400, request=request)
    elif settings.desktop_only and not flow.preview and looks_mobile(request.headers.get("user-agent", "")):
        response = ctx.message(*DESKTOP, request=request)
    elif await run_in_threadpool(flow.is_full):
        response = ctx.message(*FULL, request=request)
    else:
        hidden = {VISIT: secrets.token_urlsafe(18), **refs}
        if participant is not None:  # carried to /consent: the one id that was read and checked
            hidden[PARAMETER_OF_SOURCE[participant.source]] = participant.value
        response = ctx.page(request, "consent.html", study_name=ctx.design.name, consent=ctx.texts["consent"],
                            hidden=hidden, desktop_only=settings.desktop_only and not flow.preview)
    return set_cookie(response, BROWSER_COOKIE, browser, ctx.secure_cookies) if new_browser else response


async def consent(request: Request) -> Response:
    ctx = _ctx(request)
    flow = ctx.flow_for(request)
    settings = ctx.design.settings
    form = parse_form(await read_body(request))
    try:
        participant = participant_from_query(form)
        refs = platform_refs(form, participant)
    except InvalidParticipant as error:
        return ctx.message("This link does not work", str(error), status=400, request=request)
    if form.get("consent") != "yes":
        return ctx.message("No consent given", "You did not agree to take part, so nothing was recorded. You may close "
                           "this page." + (RETURN if participant and participant.source == "prolific" else ""),
                           request=request)
    environment = parse_environment(form, request.headers.get("user-agent", ""))
    if settings.desktop_only and not flow.preview and looks_mobile(environment["user_agent"], environment):
        return ctx.message(*DESKTOP, request=request)
    if participant is None:
        if settings.requires_id and not flow.preview:
            return ctx.message("This link does not work", NEEDS_ID, status=400, request=request)
        visit = form.get(VISIT, "")
        if not TOKEN.fullmatch(visit):
            return ctx.message("Please start again", "The form was incomplete; open the study link again.", status=400,
                               request=request)
        participant = ParticipantId("anonymous", visit)
    study_ref, session_ref = REF_PARAMETERS.get(participant.source, (None, None))
    browser_hash = ctx.browser_hash(cookie_token(request, BROWSER_COOKIE))
    arrival = Arrival(browser_hash, refs.get(study_ref), refs.get(session_ref), environment,
                      condition=ctx.preview_of(request) or None)
    try:
        session = await run_in_threadpool(flow.start, participant, arrival)
    except StudyFull:
        return ctx.message(*FULL, request=request)
    if session.phase != "teaching":
        return _resume(ctx, request, session, browser_hash)
    if not (owns(session, cookie_token(request), browser_hash) or settings.allow_other_device):
        return ctx.message(*ELSEWHERE, status=409, request=request)
    return with_session_cookie(redirect("/instructions"), session.token, ctx.secure_cookies)


async def current_session(request: Request) -> tuple[StudyFlow, Row]:
    """The flow and session of the request's cookie; 401/400/403 if there is none, a malformed one, an unknown one."""
    flow = _ctx(request).flow_for(request)
    session = await run_in_threadpool(flow.session, session_token(request))
    if session is None:
        raise FlowError(403, "unknown session; open the study link again")
    return flow, session


async def instructions(request: Request) -> Response:
    ctx = _ctx(request)
    flow, session = await current_session(request)
    if session.phase != "teaching":
        return redirect(flow.state(session)["url"])
    return ctx.page(request, "instructions.html", text=ctx.texts["instructions"])


async def teaching(request: Request) -> Response:
    ctx = _ctx(request)
    flow, session = await current_session(request)
    if session.phase != "teaching":
        return redirect(flow.state(session)["url"])
    return ctx.page(request, "teaching.html", rows=ctx.teaching_rows(session.condition), pixelated=ctx.pixelated,
                    text=ctx.texts["teaching"], steps=len(session.plan["quiz"]) + len(session.plan["test"]),
                    aids=session.condition in ctx.aids)


async def teaching_done(request: Request) -> Response:
    ctx = _ctx(request)
    await read_body(request)
    state = await run_in_threadpool(ctx.flow_for(request).finish_teaching, session_token(request))
    return redirect(state["url"])


async def trial(request: Request) -> Response:
    ctx = _ctx(request)
    flow, session = await current_session(request)
    state = flow.state(session)
    if session.phase not in ("quiz", "test"):
        return redirect(state["url"])
    settings = ctx.design.settings
    teaching_open = session.phase == "test" or settings.teaching_during_quiz
    config = {"phase": session.phase, "break_every": settings.break_every}
    return ctx.page(request, "trial.html", state=state, config=config, class_names=ctx.design.display_names,
                    rows=ctx.teaching_rows(session.condition) if teaching_open else None, pixelated=ctx.pixelated,
                    intros={name: ctx.texts[name] for name in ("quiz", "test", "break")})


async def done(request: Request) -> Response:
    ctx = _ctx(request)
    flow, session = await current_session(request)
    if session.phase not in ENDED:
        return redirect(flow.state(session)["url"])
    code, prolific = session.completion_code, session.id_source == "prolific" or flow.preview
    screened = session.phase == "screened_out"
    return ctx.page(request, "done.html", code=code, screened=screened, prolific=prolific,
                    text=ctx.texts["screened_out" if screened else "debrief"],
                    prolific_url=f"{PROLIFIC_COMPLETE}{code}" if prolific and code else None)


# ---- the JSON API ----------------------------------------------------------------------------

def _require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json", status=415)


async def api_state(request: Request) -> Response:
    flow, session = await current_session(request)
    return JSONResponse(flow.state(session), headers={"cache-control": "no-store"})


async def api_answer(request: Request) -> Response:
    ctx = _ctx(request)
    _require_json(request)
    token = session_token(request)
    answer = parse_answer(await read_body(request), len(ctx.design.class_names))
    result = await run_in_threadpool(ctx.flow_for(request).answer, token, answer)
    return JSONResponse(result, headers={"cache-control": "no-store"})


async def api_event(request: Request) -> Response:
    ctx = _ctx(request)
    _require_json(request)
    token = session_token(request)
    event = parse_event(await read_body(request))
    result = await run_in_threadpool(ctx.flow_for(request).event, token, event)
    return JSONResponse(result, headers={"cache-control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/", entry, methods=["GET"]),
        Route("/consent", consent, methods=["POST"]),
        Route("/instructions", instructions, methods=["GET"]),
        Route("/teach", teaching, methods=["GET"]),
        Route("/teach/done", teaching_done, methods=["POST"]),
        Route("/trial", trial, methods=["GET"]),
        Route("/done", done, methods=["GET"]),
        Route("/api/state", api_state, methods=["GET"]),
        Route("/api/answer", api_answer, methods=["POST"]),
        Route("/api/event", api_event, methods=["POST"]),
    ]
