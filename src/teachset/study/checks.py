"""Attention checks and exclusion rules: where a participant's checks go among the test trials, and
which participants the analysis leaves out, and why.

The checks are spread over the test: the test is cut into as many equal stretches as there are
checks and each check goes at a random place inside its stretch (never first), so they come neither
in a cluster nor at predictable places. A participant is left out of the analysis when they failed
more checks than the study allows, gave too large a fraction of implausibly fast test answers, or
were screened out during the study; every one is listed with the reasons, never dropped silently.
"""

from __future__ import annotations

import random

from .settings import StudySettings


def place_checks(test: list[str], checks: list[str], rng: random.Random) -> list[str]:
    """The test order with `checks` inserted, one per equal stretch of the test, at a random place in it."""
    n, k = len(test), len(checks)
    places = []
    for i in range(k):  # an insertion index in [1, n] within stretch i, so that checks rarely touch
        low = min(n, max(1, (i * n) // k))
        high = n if i == k - 1 else max(low, ((i + 1) * n) // k - 1)
        places.append(rng.randint(low, high))
    order, taken = [], 0
    for position, token in enumerate(test + [None]):
        while taken < k and places[taken] == position:
            order.append(checks[taken])
            taken += 1
        if token is not None:
            order.append(token)
    return order


def exclusion_reasons(participant: dict, settings: StudySettings) -> list[str]:
    """Why the analysis leaves this participant (a participants.csv row) out; [] if it does not."""
    reasons = []
    failed, checks = participant["checks_failed"], participant["checks"]
    if participant["status"] == "screened_out":
        reasons.append(f"screened out during the study after failing {failed} of {checks} attention checks")
    elif failed > settings.max_failed_checks:
        reasons.append(f"failed {failed} of {checks} attention checks (allowed: {settings.max_failed_checks})")
    answered, fast = participant["test_trials"], participant["fast_answers"]
    if answered and fast / answered > settings.max_fast_fraction:
        reasons.append(f"{fast} of {answered} test answers faster than {settings.fast_rt_ms} ms "
                       f"(allowed: {settings.max_fast_fraction:.0%})")
    return reasons


def exclusion_rules(settings: StudySettings) -> list[str]:
    """The rules, in words, for the report."""
    return [
        f"more than {settings.max_failed_checks} failed attention check(s)",
        f"more than {settings.max_fast_fraction:.0%} of test answers faster than {settings.fast_rt_ms} ms",
        "screened out during the study" + (f" (after {settings.screen_out_after} failed checks)"
                                           if settings.screen_out_after else " (not used in this study)"),
    ]
