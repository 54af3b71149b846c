"""The engine-wide token buckets of rate limits that many channel actors enforce together
(docs/channels/widget.md, "Rate limits").

Channel actors decide each request alone, from their own copy of the bucket: no call on
the request's path. Every ``SYNC_S`` an actor that admitted something reports how much of
each key it consumed since its last report (``exchange``); the ledger takes it from the
key's one engine-wide bucket and answers with that bucket's level, which the actor makes
its own copy (less what it admitted since the report). So every admission is counted once
engine-wide; what an actor cannot know is what the others admitted since its last answer,
and each admits at most ``unreported_cap`` of a key between two reports: the bound on
what the engine admits beyond one bucket.

The ledger is one object in the registry's host, channel actor 0 (one per engine). A key
is forgotten once its bucket is full again: it then says nothing a new bucket would not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SYNC_S = 0.1
"""How often a channel actor that admitted something reports it."""

FORGET_EVERY_S = 60.0
"""How often full buckets are forgotten."""


def unreported_cap(per_minute: int, actors: int) -> int:
    """What one of ``actors`` channel actors admits of a key between two reports at most:
    a quarter of the limit shared among them, at least one. One actor alone needs none."""
    if actors <= 1:
        return per_minute
    return max(1, math.ceil(per_minute / (4 * actors)))


@dataclass(frozen=True, slots=True)
class Consumed:
    """What a channel actor admitted of one key since its last report, and the key's
    limit (the ledger's bucket is made with it)."""

    amount: float
    per_minute: int


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float
    per_minute: int

    def level(self, now: float) -> float:
        """Tokens at ``now``: refilled at the limit's rate up to one minute's worth. Below
        zero after admissions no single actor could see; it is paid back by waiting."""
        refilled = self.tokens + max(0.0, now - self.at) * self.per_minute / 60.0
        return min(float(self.per_minute), refilled)


class RateLedger:
    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._forgotten_at = 0.0

    def exchange(self, consumed: Mapping[str, Consumed], now: float) -> dict[str, float]:
        """Take what was consumed from each key's bucket; answer each bucket's level."""
        levels: dict[str, float] = {}
        for key, used in consumed.items():
            bucket = self._buckets.get(key)
            tokens = bucket.level(now) if bucket is not None else float(used.per_minute)
            tokens -= used.amount
            self._buckets[key] = Bucket(tokens, now, used.per_minute)
            levels[key] = tokens
        if now - self._forgotten_at >= FORGET_EVERY_S:
            self._forgotten_at = now
            self._buckets = {
                key: bucket
                for key, bucket in self._buckets.items()
                if bucket.level(now) < bucket.per_minute
            }
        return levels

    def level(self, key: str, now: float) -> float | None:
        """The engine-wide bucket of ``key`` now; None: not in use (full)."""
        bucket = self._buckets.get(key)
        return bucket.level(now) if bucket is not None else None

    def __len__(self) -> int:
        return len(self._buckets)
