"""A limit on wrong dashboard tokens: after `per_client` failures from one address within `window_s`
seconds that address is refused (429) until the window has passed, whatever it sends, the right
token included; after `overall` failures from all addresses together, every address is. A guess
of the 32-character token then takes longer than any study runs.

Per server process and in memory: a restart forgets it, and each of several processes keeps its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable

PER_CLIENT = 10
OVERALL = 100
WINDOW_S = 60.0


class LoginLimiter:
    def __init__(self, per_client: int = PER_CLIENT, overall: int = OVERALL, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        self.per_client, self.overall, self.window_s, self.clock = per_client, overall, window_s, clock
        self._failures: dict[str, deque] = {}
        self._all: deque = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._all and self._all[0][0] <= now - self.window_s:
            _, client = self._all.popleft()
            mine = self._failures[client]
            mine.popleft()
            if not mine:
                del self._failures[client]

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 if it may now."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            mine = self._failures.get(client, ())
            waits = []
            if len(mine) >= self.per_client:
                waits.append(mine[-self.per_client] + self.window_s - now)
            if len(self._all) >= self.overall:
                waits.append(self._all[-self.overall][0] + self.window_s - now)
            return max(1, math.ceil(max(waits))) if waits else 0

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._failures.setdefault(client, deque()).append(now)
            self._all.append((now, client))
            while len(self._all) > 10 * self.overall:  # bounded memory under a flood
                _, old = self._all.popleft()
                self._failures[old].popleft()
                if not self._failures[old]:
                    del self._failures[old]
