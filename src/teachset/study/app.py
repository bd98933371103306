"""The study's web application (Starlette): the participant pages and JSON API (participant.py), the
researcher's dashboard and preview (dashboard.py), images and static files (here).

    GET  /img/<token>.png  a stimulus or a frame of a teaching aid (tokens are random: a URL tells
                           nothing about a class)
    GET  /static/<name>    the stylesheet (with the study's one image size), the script, the icon
    GET  /favicon.ico      the icon
    GET  /healthz          {"ok": true}

The session is an HttpOnly, SameSite=Lax cookie holding a random token; the API takes JSON only
(a cross-site form cannot post it). Every input is validated (validate.py) and every refusal is a
4xx with a message; pages are Jinja templates with autoescaping, so nothing a participant sends
is rendered as HTML, and the researcher's texts pass through a Markdown subset that escapes the
rest. Database work runs in the thread pool.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import dashboard, participant
from .aids import aid_files
from .db import Database
from .design import StudyDesign
from .flow import FlowError, StudyFlow
from .ratelimit import OVERALL, PER_CLIENT, WINDOW_S, LoginLimiter
from .validate import BadRequest
from .web import PAGES, StudyContext, display_css, json_error, page_environment

log = logging.getLogger("teachset.study")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
]
STATIC = {"study.css": "text/css", "study.js": "text/javascript", "favicon.svg": "image/svg+xml"}


def preview_study_id(uid: str) -> str:
    """The study id preview sessions are stored under: never the study's own."""
    return hashlib.sha256(f"preview:{uid}".encode()).hexdigest()[:32]


def favicon() -> bytes:
    """A 32 px icon (two example cards), drawn once: browsers ask for /favicon.ico on every site."""
    from PIL import Image, ImageDraw

    icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((1, 1, 30, 30), radius=7, fill=(31, 95, 191, 255))
    draw.rectangle((7, 8, 14, 23), fill=(255, 255, 255, 255))
    draw.rectangle((17, 8, 24, 23), fill=(240, 165, 0, 255))
    buffer = io.BytesIO()
    icon.save(buffer, format="ICO", sizes=[(32, 32)])
    return buffer.getvalue()


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


async def icon(request: Request) -> Response:
    ctx: StudyContext = request.app.state.ctx
    data, kind = ctx.static["favicon.ico"]
    return Response(data, media_type=kind, headers={"cache-control": "public, max-age=86400"})


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
    if error.status == 429:
        response.headers["retry-after"] = str(error.retry_after)
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


def create_app(design: StudyDesign, db: Database, secure_cookies: bool = False,
               login_limit: tuple[int, int, float] = (PER_CLIENT, OVERALL, WINDOW_S)) -> Starlette:
    """The ASGI application for one study on one database (schema made if missing). `login_limit`:
    wrong dashboard tokens allowed per address and overall within a window of seconds (ratelimit.py)."""
    keys = design.secrets()
    db.create_schema()
    db.ensure_study(design.uid, design.name)
    preview_id = preview_study_id(design.uid)
    db.ensure_study(preview_id, f"{design.name[:180]} (preview)")
    static_files = {name: ((PAGES / "static" / name).read_bytes(), kind) for name, kind in STATIC.items()}
    static_files["study.css"] = (static_files["study.css"][0] + display_css(design), STATIC["study.css"])
    ctx = StudyContext(
        design=design,
        db=db,
        flow=StudyFlow(design, db, keys["participant_key"]),
        preview_flow=StudyFlow(design, db, keys["participant_key"], study_id=preview_id),
        pages=page_environment(),
        images={token: path.read_bytes() for token, path in {**design.stimulus_files(), **aid_files(design)}.items()},
        static={**static_files, "favicon.ico": (favicon(), "image/x-icon")},
        dashboard_token=keys["dashboard_token"],
        key=keys["participant_key"],
        secure_cookies=secure_cookies,
        limiter=LoginLimiter(*login_limit),
    )
    routes = [
        *participant.routes(),
        Route("/img/{name}", image, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/favicon.ico", icon, methods=["GET"]),
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
