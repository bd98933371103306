"""Who a participant is: the id a recruiting platform puts in the URL, kept only as a keyed hash.

Prolific sends PROLIFIC_PID, MTurk sends workerId (and assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE
while a worker only previews the HIT); a lab link may carry participant=... . Without any of
them a participant is anonymous: a random id is made up at consent and only the session cookie
finds the session again. The id itself is never stored: the database holds
HMAC-SHA256(study key, source:id), so one id maps to one session, and the data cannot be joined
back to platform ids without the key in the study's secrets.json.

The platform's own study and session ids (Prolific's STUDY_ID and SESSION_ID, MTurk's hitId and
assignmentId) are kept as they are: they name a submission, not a person, and a researcher needs
them to match data to submissions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

ID_PARAMETERS = (("PROLIFIC_PID", "prolific"), ("workerId", "mturk"), ("participant", "url"))
REF_PARAMETERS = {"prolific": ("STUDY_ID", "SESSION_ID"), "mturk": ("hitId", "assignmentId")}
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


def _checked(name: str, value: str) -> str:
    if "{" in value or "%" in value:
        raise InvalidParticipant(
            f"the link's {name} is the placeholder '{value[:40]}', not an id; open the study from the platform's own link"
        )
    if not VALID_ID.fullmatch(value):
        raise InvalidParticipant(f"the link's {name} is not a valid id (1-64 letters, digits, '_', '.', '-')")
    return value


def participant_from_query(query: Mapping[str, str]) -> ParticipantId | None:
    """The platform id in a query string, or None if there is none; raises InvalidParticipant."""
    for name, source in ID_PARAMETERS:
        value = query.get(name)
        if value is None or value == "":
            continue
        return ParticipantId(source, _checked(name, value))
    return None


def platform_refs(query: Mapping[str, str], participant: ParticipantId | None) -> dict[str, str]:
    """{parameter: value} of the platform's study and session ids in a query (checked like ids)."""
    names = REF_PARAMETERS.get(participant.source, ()) if participant is not None else ()
    return {name: _checked(name, query[name]) for name in names if query.get(name)}


def is_mturk_preview(query: Mapping[str, str]) -> bool:
    return query.get("assignmentId") == MTURK_PREVIEW


def new_session_token() -> str:
    return secrets.token_urlsafe(32)
