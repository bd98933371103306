"""Simulated participants: a participant's browser minus the browser, over plain HTTP (stdlib).

Used by the load, crash and API tests and by benchmarks/bench_study.py, and handy to smoke-test a
deployment before real people arrive. A simulated participant does what study.js does: open the
link, consent, leave the teaching page, then answer every trial the server hands out (attention
checks too), retrying a request whose answer did not arrive (the server stores an answer once
however often it is sent). Like a browser it keeps its cookies, so the session stays its own.
Answers come from `choose(state) -> class index`; the server never tells a test label, so a
simulation that should score well must be given the labels (see `oracle`).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Callable
from urllib.parse import urlencode, urlsplit

from .design import StudyDesign


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class StudyClient:
    """One keep-alive connection and one cookie jar, like one browser tab."""

    def __init__(self, base_url: str, timeout: float = 15.0):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"simulated participants speak plain http to a host: got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.cookies: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        """One request; a dropped keep-alive connection is reopened once, other errors raise OSError."""
        sent = dict(headers or {})
        if content_type:
            sent["Content-Type"] = content_type
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._connection.request(method, path, body=body, headers=sent)
                response = self._connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            for header in response.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                for name, morsel in cookie.items():
                    if morsel["max-age"] == "0":  # deleted
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        raise AssertionError("unreachable")

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, fields: dict[str, str]) -> Reply:
        return self.request("POST", path, urlencode(fields).encode(), "application/x-www-form-urlencoded")

    def post_json(self, path: str, payload) -> Reply:
        return self.request("POST", path, json.dumps(payload).encode(), "application/json")


def oracle(design: StudyDesign, accuracy: float, rng: random.Random) -> Callable[[dict], int]:
    """A chooser that is right with probability `accuracy` (it reads the labels from the study folder)."""
    labels = {s.token: s.label for s in design.test_pool + design.checks}
    for condition in design.conditions:
        labels.update({s.token: s.label for s in condition.quiz})
    classes = len(design.class_names)

    def choose(state: dict) -> int:
        right = labels[state["stimulus"]]
        if rng.random() < accuracy:
            return right
        return rng.choice([c for c in range(classes) if c != right])

    return choose


@dataclass
class Participation:
    participant: str
    answers: dict[tuple[str, int], int] = field(default_factory=dict)  # acknowledged (phase, trial) -> answer
    latencies_s: list[float] = field(default_factory=list)  # one per acknowledged answer request
    requests: int = 0
    completion_code: str | None = None


class Refused(RuntimeError):
    """The server answered with an unexpected status."""


def _expect(reply: Reply, *statuses: int) -> Reply:
    if reply.status not in statuses:
        raise Refused(f"HTTP {reply.status}: {reply.body[:200]!r}")
    return reply


HIDDEN = re.compile(r'<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)"')


def start(client: StudyClient, participant_id: str | None, record: Participation, link: dict | None = None) -> dict:
    """Open the link (with participant=<participant_id>, or the fields of `link`, e.g. Prolific's) and
    consent (or resume); returns the session's state."""
    fields = link or ({"participant": participant_id} if participant_id else {})
    reply = _expect(client.get(f"/?{urlencode(fields)}" if fields else "/"), 200, 303)
    record.requests += 1
    if reply.status == 200:  # the consent form: post it back with its hidden fields (the environment left empty)
        form = {"consent": "yes", **dict(HIDDEN.findall(reply.body.decode()))}
        _expect(client.post_form("/consent", form), 303)
        record.requests += 1
    state = _expect(client.get("/api/state"), 200).json()
    record.requests += 1
    if state["phase"] == "teaching":
        _expect(client.post_form("/teach/done", {}), 303)
        record.requests += 1
        state = _expect(client.get("/api/state"), 200).json()
        record.requests += 1
    return state


def answer_all(client: StudyClient, state: dict, choose: Callable[[dict], int], record: Participation,
               rng: random.Random, repeat_fraction: float = 0.0, max_answers: int | None = None,
               deadline: float | None = None) -> dict:
    """Answer trials until done (or `max_answers`, or `deadline` on time.monotonic()); returns the state."""
    answered = 0
    while state["phase"] in ("quiz", "test"):
        if (max_answers is not None and answered >= max_answers) or (deadline is not None and time.monotonic() > deadline):
            break
        payload = {"phase": state["phase"], "trial": state["trial"], "stimulus": state["stimulus"],
                   "answer": choose(state), "rt_ms": rng.randint(300, 3000)}
        began = time.perf_counter()
        reply = _expect(client.post_json("/api/answer", payload), 200)
        record.latencies_s.append(time.perf_counter() - began)
        record.requests += 1
        record.answers[(payload["phase"], payload["trial"])] = payload["answer"]
        if rng.random() < repeat_fraction:  # a retried request, as after a lost response
            again = _expect(client.post_json("/api/answer", payload), 200).json()
            record.requests += 1
            if not again["duplicate"]:
                raise Refused("a repeated answer was stored twice")
        state = reply.json()["state"]
        answered += 1
    if state["phase"] in ("done", "screened_out"):
        reply = _expect(client.get("/done"), 200)
        record.requests += 1
        text = reply.body.decode()
        if 'id="completion-code">' in text:
            record.completion_code = text.split('id="completion-code">', 1)[1].split("<", 1)[0]
    return state


def run_participant(base_url: str, participant_id: str | None, choose: Callable[[dict], int], seed: int,
                    repeat_fraction: float = 0.0, timeout: float = 15.0) -> Participation:
    """One whole participation, from the link to the completion code."""
    rng = random.Random(seed)
    client = StudyClient(base_url, timeout=timeout)
    record = Participation(participant_id or "anonymous")
    try:
        state = start(client, participant_id, record)
        answer_all(client, state, choose, record, rng, repeat_fraction)
    finally:
        client.close()
    return record
