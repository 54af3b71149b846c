"""Rate limits of the widget's API: token buckets per visitor and per IP address, held
engine-wide by all channel actors together (docs/channels/widget.md, "Rate limits").

Each request is decided here, in this actor's memory, on the engine's clock. With other
channel actors beside this one, ``sync`` hands what was admitted since the last report to
the engine's ``RateLedger`` and takes back the engine-wide levels: every ``SYNC_S`` (the
widget's API runs the loop), and at once when one key has used this actor's share
(``unreported_cap``) since the last report. So a request makes no call of its own, save
the one that finds its key's share spent, and what all actors together admit beyond one
bucket is bounded by their shares (the bound is in the docs and tested).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping

from engine.errors import RateLimitedError
from engine.rate_ledger import Bucket, Consumed, unreported_cap

MAX_KEYS = 100_000
"""Buckets kept at most; full ones (idle callers) are forgotten first."""

Share = Callable[[dict[str, Consumed]], Awaitable[dict[str, float]]]
"""The engine's ledger: what was consumed per key in, the engine-wide levels out."""


class RateLimits:
    """``take(key, per_minute)``: one request of ``key``, or ``RateLimitedError`` (429).
    ``share``: the engine's ledger when other channel actors enforce the same limits."""

    def __init__(
        self, now: Callable[[], float], actors: int = 1, share: Share | None = None
    ) -> None:
        self._now = now
        self._actors = actors if share is not None else 1
        self._share = share
        self._buckets: dict[str, Bucket] = {}
        self._unreported: dict[str, Consumed] = {}
        self._carried: dict[str, Consumed] = {}
        """A report the ledger did not get: sent with the next, not held against a share."""
        self._syncing: asyncio.Task[None] | None = None

    async def take(self, key: str, per_minute: int, what: str) -> None:
        if self._share_spent(key, per_minute):
            try:
                await self.sync()
            except Exception:  # the ledger is not reached: this actor limits alone meanwhile
                self._carry()
        now = self._now()
        bucket = self._buckets.get(key)
        tokens = bucket.level(now) if bucket is not None else float(per_minute)
        if tokens < 1.0:
            wait_s = math.ceil((1.0 - tokens) / (per_minute / 60.0))
            raise RateLimitedError(f"{what} over {per_minute} a minute; wait {wait_s} s", wait_s)
        self._buckets[key] = Bucket(tokens - 1.0, now, per_minute)
        if self._actors > 1:
            unreported = self._unreported.get(key)
            amount = unreported.amount if unreported is not None else 0.0
            self._unreported[key] = Consumed(amount + 1.0, per_minute)
        if len(self._buckets) > MAX_KEYS:
            self._forget_full(now)

    def _share_spent(self, key: str, per_minute: int) -> bool:
        unreported = self._unreported.get(key)
        return unreported is not None and unreported.amount >= unreported_cap(
            per_minute, self._actors
        )

    async def sync(self) -> None:
        """Report to the ledger and take the engine-wide levels; requests that need it at
        the same moment share one call. Raises what the ledger's call raised."""
        if self._share is None:
            return
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.create_task(self._exchange(self._share))
        await asyncio.shield(self._syncing)

    async def _exchange(self, share: Share) -> None:
        report = self._report()
        if not report:
            return
        try:
            levels = await share(report)
        except BaseException:
            self._carried.update(report)
            raise
        self._absorb(levels)

    def _report(self) -> dict[str, Consumed]:
        """What was admitted since the last report (and any report that failed)."""
        report, self._unreported = self._unreported, {}
        for key, carried in self._carried.items():
            now_used = report.get(key)
            amount = carried.amount + (now_used.amount if now_used else 0.0)
            report[key] = Consumed(amount, carried.per_minute)
        self._carried = {}
        return report

    def _carry(self) -> None:
        """Without the ledger, what was admitted waits for the next report and no longer
        counts against this actor's share: it limits alone until the ledger is back."""
        for key, consumed in self._unreported.items():
            carried = self._carried.get(key)
            amount = consumed.amount + (carried.amount if carried else 0.0)
            self._carried[key] = Consumed(amount, consumed.per_minute)
        self._unreported = {}

    def _absorb(self, levels: Mapping[str, float]) -> None:
        """This actor's buckets become the engine-wide levels, less what it admitted
        since the report."""
        now = self._now()
        for key, level in levels.items():
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            since = self._unreported.get(key)
            tokens = level - (since.amount if since else 0.0)
            self._buckets[key] = Bucket(tokens, now, bucket.per_minute)

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket.level(now) < bucket.per_minute
        }
