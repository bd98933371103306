"""What the participant pages (participant.py), the researcher dashboard (dashboard.py) and the app
(app.py) share: the context every handler reads, the page templates, cookies, and small request and
response helpers.

Cookies (all HttpOnly, SameSite=Lax unless said):
    teachset_session    the session's random token: the participant's credential for the API
    teachset_browser    a random id given at the first page; the session keeps its keyed hash, so the
                        browser that started a session finds it again even if the consent reply was lost
    teachset_preview    preview mode: "<condition>.<HMAC>" (set from the dashboard; a participant
                        cannot make one)
    teachset_dashboard  the dashboard's login (SameSite=Strict, path /dashboard; see dashboard.py)

The modules that import this one import nothing of each other's handlers, so they form no cycle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .aids import load_aids
from .db import Database
from .design import STUDY_FILE, StudyDesign
from .flow import StudyFlow
from .identity import TOKEN
from .ratelimit import LoginLimiter
from .texts import fill, render_markdown
from .validate import MAX_BODY_BYTES, BadRequest

PAGES = Path(__file__).parent / "pages"
SESSION_COOKIE = "teachset_session"
BROWSER_COOKIE = "teachset_browser"
PREVIEW_COOKIE = "teachset_preview"
SESSION_MAX_AGE_S = 14 * 24 * 3600
PREVIEW_MAX_AGE_S = 12 * 3600
PIXELATED_BELOW = 96  # images smaller than this are scaled up with hard pixel edges
CSS_PX = 200  # a study without a recorded display: every image at most this many CSS pixels wide
PAGE_TEXTS = ("consent", "instructions", "teaching", "quiz", "test", "break", "debrief", "screened_out")


@dataclass
class StudyContext:
    """What every handler needs; built once when the app starts."""

    design: StudyDesign
    db: Database
    flow: StudyFlow
    preview_flow: StudyFlow
    pages: Environment
    images: dict[str, bytes]
    static: dict[str, tuple[bytes, str]]
    dashboard_token: str
    key: str
    secure_cookies: bool
    limiter: LoginLimiter
    texts: dict[str, Markup] | None = None
    aids: dict | None = None  # condition -> teaching token -> its strips (aids.py)

    def __post_init__(self):
        values = self.design.text_values()
        self.texts = {name: render_markdown(fill(self.design.texts.sections[name], values)) for name in PAGE_TEXTS}
        self.aids = load_aids(self.design)

    def render(self, template: str, status: int = 200, **values) -> HTMLResponse:
        values.setdefault("title", self.design.name)
        values.setdefault("preview", False)
        html = self.pages.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def page(self, request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        """A participant page; in preview mode with the preview banner."""
        return self.render(template, status, preview=self.preview_of(request) is not None, **values)

    def message(self, heading: str, message: str, status: int = 200, request: Request | None = None) -> HTMLResponse:
        preview = request is not None and self.preview_of(request) is not None
        return self.render("message.html", status=status, heading=heading, message=message, preview=preview)

    def teaching_rows(self, condition: str) -> list[dict]:
        """Per class: its display name and its images, each with its aid's strips (display name of the
        target class, frame URLs) where the condition has aids."""
        teach, aids, names = self.design.condition(condition).teach, self.aids.get(condition, {}), self.design.display_names
        return [{"name": name, "images": [{"token": s.token, "aids": [
                    {"to": names[a["to"]], "frames": [f"/img/{t}.png" for t in a["frames"]]} for a in aids.get(s.token, ())]}
                    for s in teach if s.label == c]}
                for c, name in enumerate(names)]

    @property
    def pixelated(self) -> bool:
        return self.design.image_size < PIXELATED_BELOW

    # ---- cookies -----------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(bytes.fromhex(self.key), text.encode(), hashlib.sha256).hexdigest()

    def preview_cookie(self, condition: str) -> str:
        return f"{condition}.{self._sign('preview:' + condition)[:32]}"

    def preview_of(self, request: Request) -> str | None:
        """The preview condition ("" for any) if the request carries a valid preview cookie, else None."""
        value = request.cookies.get(PREVIEW_COOKIE, "")
        condition, _, _ = value.partition(".")
        if value and len(value) <= 80 and hmac.compare_digest(value.encode(), self.preview_cookie(condition).encode()):
            return condition
        return None

    def flow_for(self, request: Request) -> StudyFlow:
        return self.preview_flow if self.preview_of(request) is not None else self.flow

    def browser_hash(self, token: str | None) -> str | None:
        """The keyed hash of a browser cookie's value (None for none or a malformed one)."""
        return self._sign("browser:" + token) if token and TOKEN.fullmatch(token) else None


def display_css(design: StudyDesign) -> bytes:
    """The one CSS size of every image of the study (teaching and test), as its display recorded it:
    at most css_px on a wide screen, less on a narrow one."""
    try:
        css = int(json.loads((design.path / STUDY_FILE).read_text()).get("display", {}).get("css_px") or CSS_PX)
    except (OSError, ValueError, TypeError):
        css = CSS_PX
    return f"\n:root {{ --image: clamp({min(120, css)}px, 44vw, {css}px); }}\n".encode()


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


def cookie_token(request: Request, name: str = SESSION_COOKIE) -> str | None:
    """The cookie's token if there is a well-formed one, else None."""
    token = request.cookies.get(name, "")
    return token if TOKEN.fullmatch(token) else None


def set_cookie(response: Response, name: str, value: str, secure: bool, max_age: int = SESSION_MAX_AGE_S) -> Response:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")
    return response


def with_session_cookie(response: Response, token: str, secure: bool) -> Response:
    return set_cookie(response, SESSION_COOKIE, token, secure)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
