"""Rate limits of the widget's API: token buckets per visitor and per IP address.

Kept in the memory of each channel actor: a visitor's requests spread over N actors may
reach N times the limit (docs/channels/widget.md, "Limits"). Read on the engine's clock,
so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.errors import RateLimitedError

MAX_KEYS = 100_000
"""Buckets kept at most; full ones (idle callers) are forgotten first."""


class RateLimits:
    """``take(key, per_minute)``: one request of ``key``, or ``RateLimitedError`` (429)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, per_minute: int, what: str) -> None:
        now = self._now()
        rate_s = per_minute / 60.0
        tokens, at = self._buckets.get(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - at) * rate_s)
        if tokens < 1.0:
            wait_s = math.ceil((1.0 - tokens) / rate_s)
            self._buckets[key] = (tokens, now)
            raise RateLimitedError(f"{what} over {per_minute} a minute; wait {wait_s} s", wait_s)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_KEYS:
            self._forget_full(per_minute, now)

    def _forget_full(self, per_minute: int, now: float) -> None:
        rate_s = per_minute / 60.0
        self._buckets = {
            key: (tokens, at)
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * rate_s < per_minute
        }
