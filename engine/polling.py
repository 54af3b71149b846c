"""Polling connectors: one loop for all of them, run by channel actor 0 alone
(docs/channels/contract.md, "Polling").

A connector polls when its channel says so (``Channel.poll_interval_s``, from its
credentials). When its interval has passed since the last poll, the loop asks the channel for
what arrived after the stored cursor, and stores the items and the new cursor in **one**
durable transaction of this actor's intake (``IntakeStore.append_polled``): a crash keeps
both or neither, so after a restart the next poll starts where the last stored one ended,
repeating no item and skipping none (an item fetched again at the cursor is dropped by the
intake's de-duplication). The items are then handed off like a webhook's. The set of
connectors follows the registry at every tick; the cursor and the time of the last poll
survive restarts in the intake file, which belongs to actor 0 whatever it restarts as.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from channels.base import Channel, PollResult
from engine.clock import Clock
from engine.config import ConnectorConfig
from engine.errors import EngineError, RetryableSendError
from engine.handoff import Handoff, InProgress
from engine.ingest import addressed
from engine.metrics import Counters
from engine.registry import EdgeRegistry
from engine.store.intake import IntakeStore
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the loop looks for a connector whose interval has passed."""
MAX_PAGES = 20
"""Pages fetched in one round for one connector (``PollResult.more``); the rest next tick."""
POLLING_ACTOR = 0
"""The channel actor that owns every polling loop."""


class PollingLoop:
    """Polls every polling connector of the registry in turn, on the engine's clock."""

    def __init__(
        self,
        registry: Callable[[], EdgeRegistry],
        channel_of: Callable[[ConnectorConfig], Channel],
        intake: ThreadedStore[IntakeStore],
        handoff: Handoff,
        in_progress: InProgress,
        session: aiohttp.ClientSession,
        clock: Clock,
        counters: Counters,
        pool_size: int,
    ) -> None:
        self._registry = registry
        self._channel_of = channel_of
        self._intake = intake
        self._handoff = handoff
        self._in_progress = in_progress
        self._session = session
        self._clock = clock
        self._counters = counters
        self._pool_size = pool_size
        self._held_until: dict[str, float] = {}
        """Connectors a provider throttled, until when (its ``retry_after``); in memory: a
        restart polls at the next interval, and a provider still throttling says so again."""

    async def run(self) -> None:
        while True:
            await self.poll_due()
            await self._clock.sleep(TICK_S)

    async def poll_due(self) -> int:
        """Poll every connector whose interval has passed; returns how many were polled."""
        polled = 0
        for connector in list(self._registry().connectors.values()):
            try:
                channel = self._channel_of(connector)
            except EngineError:  # credentials that no longer build: the webhook says so too
                continue
            interval_s = channel.poll_interval_s
            if interval_s is None:
                continue
            if self._clock.now() < self._held_until.get(connector.id, 0.0):
                continue
            stored = await self._intake.call(self._intake.store.poll_cursor, connector.id)
            if stored is not None and self._clock.now() < stored[1] + interval_s:
                continue
            polled += 1
            await self._poll_guarded(connector, channel, None if stored is None else stored[0])
        return polled

    async def _poll_guarded(
        self, connector: ConnectorConfig, channel: Channel, cursor: str | None
    ) -> None:
        try:
            await self.poll_connector(connector, channel, cursor)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a loop boundary: the next interval polls from the cursor
            log.warning(
                "poll failed: channel=%s connector=%s: %s", connector.channel, connector.id, exc
            )
            if isinstance(exc, RetryableSendError) and exc.retry_after_s:
                # Throttled (Telegram 429 retry_after, Meta's regain-access estimate): not
                # before the time the provider named, even if the interval is shorter.
                self._held_until[connector.id] = self._clock.now() + exc.retry_after_s
            self._counters.inc(
                "openlines_poll_failed_total", channel=connector.channel, connector=connector.id
            )

    async def poll_connector(
        self, connector: ConnectorConfig, channel: Channel, cursor: str | None
    ) -> None:
        """Pages from ``cursor`` until the channel has no more (or ``MAX_PAGES``)."""
        for _ in range(MAX_PAGES):
            token = self._in_progress.start()
            try:
                result = await channel.poll(self._session, cursor, self._clock.now())
                await self._store(connector, result)
            finally:
                self._in_progress.finish(token)
            cursor = result.cursor
            if not result.more:
                return

    async def _store(self, connector: ConnectorConfig, result: PollResult) -> None:
        parsed = result.parsed
        for reason in parsed.ignored:
            self._counters.inc("openlines_ignored_total", channel=connector.channel, reason=reason)
        items = addressed([*parsed.messages, *parsed.events], self._pool_size)
        store = self._intake.store
        kept = await self._intake.call(
            store.append_polled, items, connector.id, result.cursor, self._clock.now()
        )
        rows = [row for row in kept if row is not None]
        self._handoff.add(rows)
        if items:
            self._counters.inc("openlines_received_total", len(items), channel=connector.channel)
        if len(rows) < len(items):
            self._counters.inc(
                "openlines_duplicates_total", len(items) - len(rows), channel=connector.channel
            )
