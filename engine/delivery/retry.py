"""When to try a failed delivery again: exponential backoff with jitter, provider hints first."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime


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


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """``Retry-After`` as seconds from ``now_s``: delay-seconds or an HTTP date (RFC 9110
    10.2.3); ``None`` for what does not read as either. A date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    at_s = http_date_s(value)
    return None if at_s is None else max(0.0, at_s - now_s)


def http_date_s(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as a Unix time, or ``None``."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
