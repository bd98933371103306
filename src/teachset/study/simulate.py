"""Simulated participants: a participant's browser minus the browser, over plain HTTP (stdlib).

Used by the load, crash and API tests and by benchmarks/bench_study.py, and handy to smoke-test a
deployment before real people arrive. A simulated participant does what study.js does: open the
link, consent, leave the teaching page, then answer every trial the server hands out (attention
checks too), retrying a request whose answer did not arrive (the server stores an answer once
however often it is sent). Like a browser it keeps its cookies, so the session stays its own.
Answers come from `choose(state) -> class index`; the server never tells a test label, so a
simulation that should score well must be given the labels (see `oracle`).

`simulate_study` (`teachset study simulate`) is the test instrument: participants who look at the
teaching page (so they know their condition, as a person does) and answer with a known proxy's
probabilities (teachset.proxy), lapsing to a random answer at a given rate. They are marked: their
browser says it is `teachset-simulate` with a keyed mark only the study's key makes, which the
exports read back as `simulated` (a participant cannot mark themselves).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import random
import re
import secrets
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

    def __init__(self, base_url: str, timeout: float = 15.0, user_agent: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"simulated participants speak plain http to a host: got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.user_agent = user_agent
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
        if self.user_agent:
            sent.setdefault("User-Agent", self.user_agent)
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
    teaching: list[str] = field(default_factory=list)  # the image tokens of the teaching page (start(look=True))


class Refused(RuntimeError):
    """The server answered with an unexpected status."""


def _expect(reply: Reply, *statuses: int) -> Reply:
    if reply.status not in statuses:
        raise Refused(f"HTTP {reply.status}: {reply.body[:200]!r}")
    return reply


HIDDEN = re.compile(r'<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)"')
IMAGE = re.compile(r'src="/img/([0-9a-f]{16})\.png"')


def start(client: StudyClient, participant_id: str | None, record: Participation, link: dict | None = None,
          look: bool = False) -> dict:
    """Open the link (with participant=<participant_id>, or the fields of `link`, e.g. Prolific's) and
    consent (or resume); returns the session's state. `look`: read the instructions and the teaching
    page first, as a person does (its image tokens go to record.teaching)."""
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
        if look:
            _expect(client.get("/instructions"), 200)
            record.teaching = IMAGE.findall(_expect(client.get("/teach"), 200).body.decode())
            record.requests += 2
        _expect(client.post_form("/teach/done", {}), 303)
        record.requests += 1
        state = _expect(client.get("/api/state"), 200).json()
        record.requests += 1
    return state


def answer_all(client: StudyClient, state: dict, choose: Callable[[dict], int], record: Participation,
               rng: random.Random, repeat_fraction: float = 0.0, max_answers: int | None = None,
               deadline: float | None = None, reaction: Callable[[random.Random], int] | None = None) -> dict:
    """Answer trials until done (or `max_answers`, or `deadline` on time.monotonic()); returns the state.
    `reaction(rng)`: each answer's response time in ms (default: uniform from 300 to 3000)."""
    answered = 0
    while state["phase"] in ("quiz", "test"):
        if (max_answers is not None and answered >= max_answers) or (deadline is not None and time.monotonic() > deadline):
            break
        payload = {"phase": state["phase"], "trial": state["trial"], "stimulus": state["stimulus"],
                   "answer": choose(state),
                   "rt_ms": reaction(rng) if reaction else rng.randint(300, 3000)}
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


# ---- simulated participants as a test instrument (`teachset study simulate`) ----------------------

SIMULATED_AGENT = "teachset-simulate/1"


def simulation_mark(design: StudyDesign) -> str:
    """The mark a simulated participant's browser carries: keyed with the study's participant key, so
    that nobody without the study's secrets.json can make one."""
    key = bytes.fromhex(design.secrets()["participant_key"])
    return hmac.new(key, b"teachset-simulate", hashlib.sha256).hexdigest()[:20]


def simulated_agent(design: StudyDesign, what: str = "") -> str:
    """The user agent of a simulated participant of `design` (`what`: the proxy it answers with)."""
    return f"{SIMULATED_AGENT} ({simulation_mark(design)}){' ' + what if what else ''}"[:300]


def is_simulated(user_agent: str | None, mark: str | None) -> bool:
    return bool(mark and user_agent and user_agent.startswith(f"{SIMULATED_AGENT} ({mark})"))


def condition_of(design: StudyDesign, teaching_tokens: list[str]) -> str:
    """The condition whose teaching page shows these image tokens."""
    shown = set(teaching_tokens)
    for condition in design.conditions:
        if shown and {s.token for s in condition.teach} <= shown:
            return condition.name
    raise Refused("the teaching page shows no condition's teaching set")


def proxy_chooser(design: StudyDesign, condition: str, tables: dict[str, dict[str, list[float]]], lapse: float,
                  rng: random.Random) -> Callable[[dict], int]:
    """A chooser that answers a quiz or test trial with the proxy's probabilities for the condition
    (`tables`: condition -> stimulus token -> probabilities, lapse included), and an attention check
    right unless it lapses (a random answer with probability `lapse`)."""
    checks = {s.token: s.label for s in design.checks}
    classes = range(len(design.class_names))

    def choose(state: dict) -> int:
        token = state["stimulus"]
        if token in checks:
            return rng.choice(classes) if rng.random() < lapse else checks[token]
        return rng.choices(classes, weights=tables[condition][token])[0]

    return choose


def reaction_ms(rng: random.Random) -> int:
    """A person's response time: log-normal around 1.5 s, never implausibly fast."""
    return int(min(20_000, max(400, rng.lognormvariate(math.log(1500), 0.45))))


@dataclass
class Simulation:
    participants: list[Participation]
    conditions: dict[str, int]  # how many went to each condition
    completed: int
    screened_out: int


def simulate_participants(design: StudyDesign, base_url: str, participants: int, tables: dict, lapse: float,
                          seed: int = 0, what: str = "", tag: str | None = None) -> Simulation:
    """`participants` simulated people, one after the other, each through the whole study at `base_url`:
    consent, instructions, teaching page, quiz, test (checks included), done. Participant ids are
    sim-<tag>-<n> (`tag` random unless given: a second run adds new participants)."""
    tag = tag or secrets.token_hex(4)
    agent = simulated_agent(design, what)
    records, conditions, ended = [], {c.name: 0 for c in design.conditions}, {"done": 0, "screened_out": 0}
    for n in range(participants):
        rng = random.Random(f"{seed}:{n}")
        client, record = StudyClient(base_url, user_agent=agent), Participation(f"sim-{tag}-{n:04d}")
        try:
            state = start(client, record.participant, record, look=True)
            if state["phase"] in ("quiz", "test"):
                condition = condition_of(design, record.teaching)
                conditions[condition] += 1
                state = answer_all(client, state, proxy_chooser(design, condition, tables, lapse, rng), record, rng,
                                   reaction=reaction_ms)
            ended[state["phase"]] = ended.get(state["phase"], 0) + 1
        finally:
            client.close()
        records.append(record)
    return Simulation(records, conditions, ended["done"], ended["screened_out"])

