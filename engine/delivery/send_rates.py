"""Pacing replies to a provider's rate limits, per connector and per chat, on the engine's
clock (docs/channels/contract.md, "Outbound").

A channel declares its provider's limits (``Channel.send_rate``); before each attempt the
reply sender takes a token from the connector's bucket and from the chat's, and waits for
the later of the two. A bucket holds ``burst`` tokens and gains ``per_s`` a second; taking
from an empty bucket reserves the next token (the count goes below zero), so waiters are
served in the order they came and the rate holds however many wait. Pacing keeps the
engine under a limit it knows; a provider that still throttles (429 with ``retry_after``,
VK error 6, Meta codes 4/17/32/613) is retried after the time it names (``replies``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.clock import Clock


@dataclass(frozen=True)
class Rate:
    """``per_s`` sends a second on average, ``burst`` at once after a quiet spell."""

    per_s: float
    burst: float = 1.0


@dataclass(frozen=True)
class SendRate:
    """A provider's limits: for one connector (a bot, a page) and for one chat in it."""

    per_connector: Rate | None = None
    per_chat: Rate | None = None


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate
        self._tokens = rate.burst
        self._at = now

    def take(self, now: float) -> float:
        """Take one token; returns how long to wait before using it (0: at once)."""
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self._rate.burst, self._tokens + elapsed * self._rate.per_s)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate.per_s

    def idle(self, now: float) -> bool:
        """Full again: it can be forgotten and made anew with the same effect."""
        return self._tokens + (now - self._at) * self._rate.per_s >= self._rate.burst


class SendPacer:
    """The buckets of one portal actor's reply sender, made on first use."""

    FORGET_AFTER = 10_000
    """Chat buckets kept before full ones are forgotten (a chat writes rarely)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str | None], TokenBucket] = {}

    def delay_s(self, rate: SendRate, connector_id: str, chat: str) -> float:
        """Take a token of the connector and of the chat; how long to wait for both."""
        now = self._clock.now()
        waits = [0.0]
        if rate.per_connector is not None:
            waits.append(self._bucket(connector_id, None, rate.per_connector, now).take(now))
        if rate.per_chat is not None:
            waits.append(self._bucket(connector_id, chat, rate.per_chat, now).take(now))
        return max(waits)

    async def wait(self, rate: SendRate, connector_id: str, chat: str) -> None:
        delay = self.delay_s(rate, connector_id, chat)
        if delay > 0:
            await self._clock.sleep(delay)

    def _bucket(self, connector_id: str, chat: str | None, rate: Rate, now: float) -> TokenBucket:
        key = (connector_id, chat)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.FORGET_AFTER:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(rate, now)
        return bucket

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, bucket in self._buckets.items() if bucket.idle(now)]:
            del self._buckets[key]
