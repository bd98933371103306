"""Who a participant is: the id a recruiting platform puts in the URL, kept only as a keyed hash.

Prolific sends PROLIFIC_PID, MTurk sends workerId (and assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE
while a worker only previews the HIT); a lab link may carry participant=... . Without any of
them a participant is anonymous: a random id is made up at consent and only the session cookie
finds the session again. The id itself is never stored: the database holds
HMAC-SHA256(study key, source:id), so one id maps to one session, and the data cannot be joined
back to platform ids without the key in the study's secrets.json.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

ID_PARAMETERS = (("PROLIFIC_PID", "prolific"), ("workerId", "mturk"), ("participant", "url"))
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
VALID_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # used with fullmatch: `$` would let a trailing newline through
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


class InvalidParticipant(ValueError):
    """The URL's participant id is malformed: the message says what to do."""


@dataclass(frozen=True)
class ParticipantId:
    source: str  # prolific | mturk | url | anonymous
    value: str

    def hashed(self, key: str) -> str:
        return hmac.new(bytes.fromhex(key), f"{self.source}:{self.value}".encode(), hashlib.sha256).hexdigest()


def participant_from_query(query: Mapping[str, str]) -> ParticipantId | None:
    """The platform id in a query string, or None if there is none; raises InvalidParticipant."""
    for name, source in ID_PARAMETERS:
        value = query.get(name)
        if value is None or value == "":
            continue
        if "{" in value or "%" in value:
            raise InvalidParticipant(
                f"the link's {name} is the placeholder '{value[:40]}', not an id; open the study from the platform's own link"
            )
        if not VALID_ID.fullmatch(value):
            raise InvalidParticipant(f"the link's {name} is not a valid id (1-64 letters, digits, '_', '.', '-')")
        return ParticipantId(source, value)
    return None


def is_mturk_preview(query: Mapping[str, str]) -> bool:
    return query.get("assignmentId") == MTURK_PREVIEW


def new_session_token() -> str:
    return secrets.token_urlsafe(32)
