"""When to try a failed delivery again: exponential backoff with jitter, provider hints first."""

from __future__ import annotations

import random


def backoff_delay_s(
    attempt: int,
    initial_s: float,
    max_s: float,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Delay before attempt ``attempt + 1``.

    A ``Retry-After`` from the receiver wins (it knows when it will be back). Otherwise the
    delay doubles per attempt up to ``max_s`` and is drawn from its upper half ("equal
    jitter"), so many portals failing together do not retry in lockstep.
    """
    if retry_after_s is not None and retry_after_s >= 0:
        return retry_after_s
    ceiling = min(max_s, initial_s * (2 ** min(attempt, 62)))
    return float(ceiling * (0.5 + rng.random() / 2))
