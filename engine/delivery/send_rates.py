"""Pacing replies to a provider's rate limits, per connector and per chat, on the engine's
clock (docs/channels/contract.md, "Outbound").

A channel declares its provider's limits (``Channel.send_rate``); before each attempt the
reply sender takes a token from the connector's bucket and from the chat's, and waits for
the later of the two. A bucket holds ``burst`` tokens and gains ``per_s`` a second; taking
from an empty bucket reserves the next token (the count goes below zero), so waiters are
served in the order they came and the rate holds however many wait. Pacing keeps the
engine under a limit it knows; a provider that still throttles (429 with ``retry_after``,
VK error 6, Meta codes 4/17/32/613) is retried after the time it names (``replies``).

A limit over a long window (Instagram's 750 private replies an hour) is a ``KeptRate``:
its bucket's level is stored after every take (``BucketLevel``) and read back at start, so
a restart does not refill it and let a second hour's worth out at once. A level read back
counts no reservation still in the future: the replies that held them were not sent and
take their tokens again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.clock import Clock


@dataclass(frozen=True)
class Rate:
    """``per_s`` sends a second on average, ``burst`` at once after a quiet spell."""

    per_s: float
    burst: float = 1.0


@dataclass(frozen=True)
class KeptRate:
    """A connector-wide limit whose bucket survives restarts, named for the portal."""

    name: str
    """The bucket's key among the connector's (``private_replies``)."""
    rate: Rate
    limit: str
    """The provider's limit in words, shown to the portal (``750 private replies an hour``)."""


@dataclass(frozen=True)
class SendRate:
    """A provider's limits: for one connector (a bot, a page) and for one chat in it, and
    the connector's kept limits that apply to this send."""

    per_connector: Rate | None = None
    per_chat: Rate | None = None
    kept: tuple[KeptRate, ...] = ()


@dataclass(frozen=True)
class BucketLevel:
    """A kept bucket's tokens at a moment: what is stored and read back at start."""

    connector_id: str
    name: str
    tokens: float
    at: float


@dataclass(frozen=True)
class Pacing:
    """What taking the tokens for one send gave."""

    delay_s: float
    """How long to wait before sending (0: at once)."""
    limit: str | None
    """The kept limit that makes the longest wait, in words; ``None``: another or none."""
    levels: tuple[BucketLevel, ...]
    """The kept buckets' levels after the take, to store."""


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate
        self._tokens = rate.burst
        self._at = now

    @classmethod
    def resumed(cls, rate: Rate, level: BucketLevel, now: float) -> TokenBucket:
        """The bucket a stored level leaves at ``now``, without the reservations still in
        the future (their replies were not sent and take again)."""
        bucket = cls(rate, now)
        refilled = level.tokens + max(0.0, now - level.at) * rate.per_s
        bucket._tokens = min(rate.burst, max(0.0, refilled))
        return bucket

    def level(self) -> tuple[float, float]:
        """The tokens and when they were counted."""
        return self._tokens, self._at

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
        self._kept: dict[tuple[str, str], TokenBucket] = {}
        self._stored: dict[tuple[str, str], BucketLevel] = {}

    def restore(self, levels: Iterable[BucketLevel]) -> None:
        """The kept buckets' stored levels, read at start (before any take)."""
        for level in levels:
            self._stored[(level.connector_id, level.name)] = level

    def take(self, rate: SendRate, connector_id: str, chat: str) -> Pacing:
        """Take a token of each bucket that applies; how long to wait for all of them."""
        now = self._clock.now()
        waits = [0.0]
        if rate.per_connector is not None:
            waits.append(self._bucket(connector_id, None, rate.per_connector, now).take(now))
        if rate.per_chat is not None:
            waits.append(self._bucket(connector_id, chat, rate.per_chat, now).take(now))
        limit, longest, levels = None, max(waits), []
        for kept in rate.kept:
            bucket = self._kept_bucket(connector_id, kept, now)
            wait = bucket.take(now)
            tokens, at = bucket.level()
            levels.append(BucketLevel(connector_id, kept.name, tokens, at))
            if wait > longest:
                limit, longest = kept.limit, wait
        return Pacing(longest, limit, tuple(levels))

    def delay_s(self, rate: SendRate, connector_id: str, chat: str) -> float:
        """``take``'s wait alone."""
        return self.take(rate, connector_id, chat).delay_s

    def _kept_bucket(self, connector_id: str, kept: KeptRate, now: float) -> TokenBucket:
        key = (connector_id, kept.name)
        bucket = self._kept.get(key)
        if bucket is None:
            stored = self._stored.pop(key, None)
            bucket = (
                TokenBucket(kept.rate, now)
                if stored is None
                else TokenBucket.resumed(kept.rate, stored, now)
            )
            self._kept[key] = bucket
        return bucket

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
