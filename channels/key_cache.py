"""Keys a channel fetches to verify its provider's webhooks (docs/channels/contract.md,
"Asynchronous verification"): a provider that signs with keys it publishes and rotates
(the Bot Framework's OpenID keys, by ``kid``) is verified in ``Channel.authenticate``, which
may await the keys.

The cache fetches the key set on first use and keeps it ``ttl_s`` on the engine's clock. A
key id it does not know makes it fetch again at once (a rotation), but not more often than
every ``min_refetch_s``, so a forger sending made-up ids cannot make the engine hammer the
provider. One fetch at a time: concurrent requests wait for the same one. A failed fetch
keeps the old keys (if any) and is a ``UnavailableError`` only when no key can be used: the
provider gets 503 and retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from engine.clock import Clock
from engine.errors import AuthError, EngineError, UnavailableError

K = TypeVar("K")

Fetch = Callable[[], Awaitable[Mapping[str, K]]]
"""Fetches the provider's current keys by key id; raises ``EngineError`` when it cannot."""


class KeyCache(Generic[K]):
    def __init__(
        self, fetch: Fetch[K], clock: Clock, ttl_s: float = 86_400.0, min_refetch_s: float = 300.0
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl_s = ttl_s
        self._min_refetch_s = min_refetch_s
        self._keys: Mapping[str, K] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, key_id: str) -> K:
        """The key ``key_id``; ``AuthError`` when the provider does not publish it."""
        now = self._clock.now()
        if self._stale(now) or (key_id not in self._keys and self._may_refetch(now)):
            await self._refresh(key_id)
        key = self._keys.get(key_id)
        if key is None:
            raise AuthError(f"signed with key {key_id!r}, which the provider does not publish")
        return key

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now >= self._fetched_at + self._ttl_s

    def _may_refetch(self, now: float) -> bool:
        return self._fetched_at is None or now >= self._fetched_at + self._min_refetch_s

    async def _refresh(self, key_id: str) -> None:
        async with self._lock:
            now = self._clock.now()
            # Another request may have fetched while this one waited for the lock.
            if not self._stale(now) and (key_id in self._keys or not self._may_refetch(now)):
                return
            try:
                keys = await self._fetch()
            except EngineError as exc:
                if not self._keys:
                    raise UnavailableError(f"cannot fetch the provider's keys: {exc}") from exc
                # Keep the old keys; fetch again once min_refetch_s has passed.
                self._fetched_at = now - self._ttl_s + self._min_refetch_s
                return
            self._keys = dict(keys)
            self._fetched_at = now
