"""Checking what a browser sends, field by field, before anything touches the database.

Each parser takes the raw body and returns a typed value or raises BadRequest with a message that
names the field and what it must be. Nothing here trusts a type: booleans are not integers,
strings have a pattern and a length, numbers have a range, and unknown fields are refused.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

from .flow import EVENT_KINDS, TRIAL_PHASES, Answer, Event

MAX_BODY_BYTES = 4096
MAX_RT_MS = 3_600_000
MAX_TRIAL = 100_000
STIMULUS = re.compile(r"[0-9a-f]{16}")  # used with fullmatch: `$` would let a trailing newline through
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
SIZE_FIELDS = ("screen_w", "screen_h", "window_w", "window_h")
POINTERS = ("fine", "coarse", "none")
MOBILE_AGENT = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Windows Phone|Silk|Kindle|Opera Mini|BlackBerry", re.I)


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400, retry_after: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # 429: seconds until a retry may succeed


def _json_object(body: bytes, fields: set[str], required: set[str]) -> dict:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # deep nesting fits under the size limit
        raise BadRequest("the body is not valid JSON; send a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise BadRequest(f"unexpected field(s): {', '.join(k[:40] for k in unknown[:5])}")
    missing = sorted(required - set(data))
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")
    return data


def _int(data: dict, name: str, low: int, high: int) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be an integer from {low} to {high}")
    return value


def _string(data: dict, name: str, pattern: re.Pattern, what: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"'{name}' must be {what}")
    return value


def parse_answer(body: bytes, num_classes: int) -> Answer:
    data = _json_object(body, {"phase", "trial", "stimulus", "answer", "rt_ms"},
                        {"phase", "trial", "stimulus", "answer", "rt_ms"})
    if data["phase"] not in TRIAL_PHASES:
        raise BadRequest(f"'phase' must be one of {', '.join(TRIAL_PHASES)}")
    return Answer(
        phase=data["phase"],
        trial=_int(data, "trial", 0, MAX_TRIAL),
        stimulus=_string(data, "stimulus", STIMULUS, "the 16-character stimulus id of the trial"),
        answer=_int(data, "answer", 0, num_classes - 1),
        rt_ms=_int(data, "rt_ms", 0, MAX_RT_MS),
    )


def parse_event(body: bytes) -> Event:
    data = _json_object(body, {"event_id", "kind", "duration_ms"}, {"event_id", "kind"})
    if data["kind"] not in EVENT_KINDS:
        raise BadRequest(f"'kind' must be one of {', '.join(EVENT_KINDS)}")
    duration = None
    if data.get("duration_ms") is not None:
        duration = _int(data, "duration_ms", 0, 24 * MAX_RT_MS)
    return Event(event_id=_string(data, "event_id", EVENT_ID, "8-64 letters, digits, '_' or '-'"),
                 kind=data["kind"], duration_ms=duration)


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body: the first value of each field."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read; reload the page and try again") from None
    return {name: values[0] for name, values in fields.items()}


def parse_environment(form: dict[str, str], user_agent: str) -> dict:
    """The browser's environment from the consent form's fields (the page's script fills them in):
    screen and window size in CSS pixels, pixel ratio, pointer; a value that is not well formed is
    stored as missing (a participant is never turned away for an odd screen)."""
    environment: dict = {"user_agent": "".join(c for c in user_agent[:300] if c.isprintable())}
    for name in SIZE_FIELDS:
        value = form.get(name, "")
        environment[name] = int(value) if re.fullmatch(r"[0-9]{1,5}", value) else None
    ratio = form.get("pixel_ratio", "")
    environment["pixel_ratio"] = float(ratio) if re.fullmatch(r"[0-9]{1,2}(\.[0-9]{1,4})?", ratio) else None
    environment["pointer"] = form.get("pointer") if form.get("pointer") in POINTERS else None
    return environment


def looks_mobile(user_agent: str, environment: dict | None = None) -> bool:
    """A phone or tablet: by its user agent, or (where the page reported it) a touch-only pointer."""
    return bool(MOBILE_AGENT.search(user_agent)) or bool(environment and environment.get("pointer") == "coarse")
