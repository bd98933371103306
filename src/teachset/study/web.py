"""What the participant pages (app.py) and the researcher dashboard (dashboard.py) share: the
context every handler reads, the page templates, and small request and response helpers.

Both app.py and dashboard.py import this module; neither imports the other's handlers from here,
so the modules form no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .db import Database
from .design import StudyDesign
from .flow import StudyFlow
from .identity import TOKEN
from .validate import MAX_BODY_BYTES, BadRequest

PAGES = Path(__file__).parent / "pages"
SESSION_COOKIE = "teachset_session"
SESSION_MAX_AGE_S = 14 * 24 * 3600
PIXELATED_BELOW = 96  # images smaller than this are scaled up with hard pixel edges


@dataclass
class StudyContext:
    """What every handler needs; built once when the app starts."""

    design: StudyDesign
    db: Database
    flow: StudyFlow
    pages: Environment
    images: dict[str, bytes]
    static: dict[str, tuple[bytes, str]]
    dashboard_token: str
    key: str
    secure_cookies: bool

    def render(self, template: str, status: int = 200, **values) -> HTMLResponse:
        values.setdefault("title", self.design.name)
        html = self.pages.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def message(self, heading: str, message: str, status: int = 200) -> HTMLResponse:
        return self.render("message.html", status=status, heading=heading, message=message)

    def teaching_rows(self, condition: str) -> list[dict]:
        teach = self.design.condition(condition).teach
        return [{"name": name, "tokens": [s.token for s in teach if s.label == c]}
                for c, name in enumerate(self.design.class_names)]

    @property
    def pixelated(self) -> bool:
        return self.design.image_size < PIXELATED_BELOW


def page_environment() -> Environment:
    """The Jinja templates of pages/, autoescaped (the analysis report uses them too)."""
    return Environment(loader=FileSystemLoader(PAGES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"cache-control": "no-store"})


async def read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES} bytes", status=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES} bytes", status=413)
    return body


def session_token(request: Request) -> str:
    """The session cookie's token; BadRequest if absent or malformed."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise BadRequest("no session: open the study link to start", status=401)
    if not TOKEN.fullmatch(token):
        raise BadRequest("the session cookie is malformed; open the study link again")
    return token


def with_session_cookie(response: Response, token: str, secure: bool) -> Response:
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S, httponly=True, samesite="lax",
                        secure=secure, path="/")
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
