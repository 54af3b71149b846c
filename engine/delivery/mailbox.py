"""A portal's mailbox: turns its stored events into ordered, sealed batches and delivers them.

One mailbox per portal, hosted by a portal actor (alone, or with others in pooled mode).
A sequential queue has one stream: one batch in flight, the next formed only after the
portal took the previous one. A parallel queue has K streams; a dialog always maps to the
same stream, so its order holds while the streams run side by side. A failing portal only
ever stalls its own streams.

What a portal can rely on (docs/protocol.md, "Ordering and de-duplication"): an event's
delivery kind is fixed when it is claimed into a batch. A guaranteed event gets the next
``seq`` and is retried until it is delivered or its TTL sends it to dead letters, so every
``seq`` ends up at the portal or in dead letters. A best-effort event (typing, or any event
of a portal whose delivery is ``best_effort``) gets no ``seq``, says ``best_effort: true``
and has one attempt: dropped, never dead-lettered, when that attempt fails or its outcome
was lost to a restart. Attempts are counted before the POST, so ``attempt`` grows across
restarts too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from engine.clock import Clock
from engine.config import PortalConfig
from engine.delivery.envelope import batch_plaintext
from engine.delivery.ordering import in_channel_order
from engine.delivery.retry import backoff_delay_s
from engine.delivery.transport import DeliveryTransport
from engine.ids import new_id
from engine.metrics import Counters
from engine.store.base import OutboxStore
from engine.store.records import Batch, PortalStartup
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchSealer(Protocol):
    def seal(
        self, portal: PortalConfig, batch_id: str, plaintext: bytes, now_s: int
    ) -> tuple[dict[str, str], bytes]: ...


OffersSettled = Callable[[list[str]], Awaitable[None]]
"""Told the ids of offer events that reached the portal (or were given up on): the
router starts their accept timeouts then, not when it made the offer."""


class PortalMailbox:
    def __init__(
        self,
        portal: PortalConfig,
        store: ThreadedStore[OutboxStore],
        transport: DeliveryTransport,
        sealer: BatchSealer,
        clock: Clock,
        counters: Counters,
        offers_settled: OffersSettled,
        rng: random.Random | None = None,
    ) -> None:
        self.portal = portal
        self._store = store
        self._transport = transport
        self._sealer = sealer
        self._offers_settled = offers_settled
        self._clock = clock
        self._counters = counters
        self._rng = rng or random.Random()
        self._streams = 0
        self._resuming = 0
        self._resumed = asyncio.Event()
        self._pending: list[int] = []
        self._wake: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stream_count(self) -> int:
        return self.portal.streams if self.portal.queue == "parallel" else 1

    async def start(self, startup: PortalStartup | None = None) -> None:
        """Begin delivering: open batches first (left by a restart), then pending events.

        ``startup`` is what the store holds for the portal (read for many at once by the
        host); without it the mailbox reads its own.
        """
        if startup is None:
            found = await self._store.call(self._store.store.startup, [self.portal.id])
            startup = found[self.portal.id]
        self._streams = self.stream_count
        self._pending = [0] * self._streams
        for stream_hash, count in startup.pending_by_hash.items():
            self._pending[stream_hash % self._streams] += count
        self._wake = [asyncio.Event() for _ in range(self._streams)]
        open_batches = startup.open_batches
        resumed: list[list[Batch]] = [[] for _ in range(self._streams)]
        for batch in open_batches:
            resumed[batch.stream % self._streams].append(batch)
        self._resuming = len(open_batches)
        self._resumed = asyncio.Event()
        if not open_batches:
            self._resumed.set()
        self._tasks = [
            asyncio.create_task(self._run_stream(stream, resumed[stream]))
            for stream in range(self._streams)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def reconfigure(self, portal: PortalConfig) -> None:
        """Apply a changed portal config; a new stream count restarts the streams."""
        streams_before = self.stream_count
        self.portal = portal
        if self.stream_count != streams_before and self._tasks:
            await self.stop()
            await self.start()

    def notify(self, stream_hashes: Sequence[int]) -> None:
        """New events were stored for this portal (their dialogs' stream hashes)."""
        if not self._streams:
            return
        for value in stream_hashes:
            stream = value % self._streams
            self._pending[stream] += 1
            self._wake[stream].set()

    # -- one stream ------------------------------------------------------------------------

    async def _run_stream(self, stream: int, resumed: list[Batch]) -> None:
        for open_batch in resumed:
            await self._deliver_surviving(open_batch)
            self._resuming -= 1
            if self._resuming == 0:
                self._resumed.set()
        # Batches left open by a restart go first, on every stream: a changed stream count
        # maps their dialogs to other streams, whose newer events must not overtake them.
        await self._resumed.wait()
        while True:
            batch = await self._until_done(
                lambda: self._next_batch(stream),
                "batch_error",
                f"forming a batch of stream {stream}",
            )
            if batch is not None:
                await self._deliver_surviving(batch)

    async def _deliver_surviving(self, batch: Batch) -> None:
        """``_deliver`` until it completes; after a failed step the batch is read again."""
        first: Batch | None = batch

        async def step() -> None:
            nonlocal first
            current = first or await self._store.call(self._store.store.load_batch, batch.batch_id)
            first = None  # a failed step may have changed the stored batch
            if current is not None:
                await self._deliver(current)

        await self._until_done(step, "delivery_error", f"delivering batch {batch.batch_id}")

    async def _until_done(self, step: Callable[[], Awaitable[T]], reason: str, what: str) -> T:
        """Run ``step`` until it completes (a store error, a key that cannot be sealed to).

        Without this a stream's task would end with the exception and the portal would
        silently get nothing more until a restart; everything stays stored, so trying
        again a second later is safe.
        """
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop boundary: the stream must outlive a failed step
                log.exception("portal %s: %s failed", self.portal.id, what)
                self._counters.inc("openlines_rejected_total", reason=reason)
                await self._clock.sleep(1.0)

    async def _next_batch(self, stream: int) -> Batch | None:
        while self._pending[stream] <= 0:
            self._wake[stream].clear()
            await self._wake[stream].wait()
        limit = self.portal.batch_max_events
        if self._pending[stream] < limit and self.portal.linger_ms > 0:
            await self._clock.sleep(self.portal.linger_ms / 1000)
        store = self._store.store
        events = await self._store.call(store.pending, self.portal.id, stream, self._streams, limit)
        if not events:
            self._pending[stream] = 0
            return None
        ordered = in_channel_order(events)
        moved_stamps = {
            moved.rowid: moved.dialog_json
            for moved, original in zip(ordered, events, strict=True)
            if moved.rowid != original.rowid
        }
        batch = await self._store.call(
            store.claim_batch,
            self.portal.id,
            new_id("bat"),
            stream,
            [event.rowid for event in ordered],
            moved_stamps,
            self._clock.now(),
            self.portal.delivery == "best_effort",
        )
        self._pending[stream] = max(0, self._pending[stream] - len(events))
        return batch

    # -- delivering one batch ----------------------------------------------------------------

    async def _deliver(self, batch: Batch | None) -> None:
        """Attempt until the portal takes it, its events expire, or best effort gives up."""
        store = self._store
        while batch is not None:
            wait_s = batch.next_attempt_at - self._clock.now()
            if wait_s > 0:
                await self._clock.sleep(wait_s)
            batch = await self._expire(batch)
            if batch is not None and batch.attempts:
                # Best-effort events still here had their attempt and its outcome was lost
                # (a restart, a failed step; a failed attempt drops them at once): at most
                # once, so not again.
                lost = f"attempt {batch.attempts} ended without an outcome"
                batch = await self._drop_best_effort(batch, lost)
            if batch is None:
                return
            batch = replace(batch, attempts=batch.attempts + 1)
            now = self._clock.now()
            headers, body = self._sealer.seal(
                self.portal, batch.batch_id, batch_plaintext(batch, now), int(now)
            )
            # Counted before the POST: a batch resent after a crash says a higher number.
            await store.call(store.store.start_attempt, batch.batch_id, batch.attempts)
            outcome = await self._transport.post(
                self.portal.endpoint, headers, body, self.portal.request_timeout_s
            )
            if outcome.accepted:
                offers = await store.call(store.store.ack_batch, batch.batch_id)
                if offers:
                    await self._offers_settled(offers)
                self._counters.inc(
                    "openlines_delivered_total", len(batch.events), portal=self.portal.id
                )
                self._counters.inc("openlines_batches_delivered_total", portal=self.portal.id)
                return
            log.warning(
                "portal %s batch %s attempt %d failed: %s",
                self.portal.id,
                batch.batch_id,
                batch.attempts,
                outcome.error,
                extra={
                    "portal": self.portal.id,
                    "batch_id": batch.batch_id,
                    "status": outcome.status,
                },
            )
            batch = await self._drop_best_effort(batch, outcome.error)
            if batch is None:
                return
            delay = backoff_delay_s(
                batch.attempts - 1,
                self.portal.retry_initial_s,
                self.portal.retry_max_s,
                self._rng,
                outcome.retry_after_s,
            )
            next_at = min(now + delay, self._expiry(batch))
            await store.call(store.store.schedule_retry, batch.batch_id, next_at, outcome.error)
            self._counters.inc("openlines_retried_total", portal=self.portal.id)
            batch = replace(batch, next_attempt_at=next_at)

    def _expiry(self, batch: Batch) -> float:
        return batch.oldest_received_at + self.portal.ttl_s

    async def _expire(self, batch: Batch) -> Batch | None:
        """Events past their TTL leave: guaranteed ones to dead letters (their ``seq`` is
        listed there), best-effort ones dropped."""
        now = self._clock.now()
        expired = [e for e in batch.events if now >= e.received_at + self.portal.ttl_s]
        if not expired:
            return batch
        dead = [e.rowid for e in expired if not e.best_effort]
        reason = f"not delivered within ttl_s={self.portal.ttl_s} after {batch.attempts} attempts"
        if dead:
            await self._drop(batch, dead, reason, dead_letter=True)
            self._counters.inc("openlines_dead_lettered_total", len(dead), portal=self.portal.id)
            log.error(
                "portal %s: %d events to dead letters: %s",
                self.portal.id,
                len(dead),
                reason,
                extra={"portal": self.portal.id, "batch_id": batch.batch_id},
            )
        dropped = [e.rowid for e in expired if e.best_effort]
        if dropped:
            await self._drop(batch, dropped, f"best effort: {reason}", dead_letter=False)
            self._counters.inc("openlines_dropped_total", len(dropped), portal=self.portal.id)
        return await self._store.call(self._store.store.load_batch, batch.batch_id)

    async def _drop_best_effort(self, batch: Batch, error: str) -> Batch | None:
        """Best-effort events had their one attempt: they leave without a dead letter."""
        dropped = [e.rowid for e in batch.events if e.best_effort]
        if not dropped:
            return batch
        await self._drop(batch, dropped, f"best effort, one attempt: {error}", dead_letter=False)
        self._counters.inc("openlines_dropped_total", len(dropped), portal=self.portal.id)
        return await self._store.call(self._store.store.load_batch, batch.batch_id)

    async def _drop(
        self, batch: Batch, rowids: list[int], reason: str, *, dead_letter: bool
    ) -> None:
        store = self._store
        offers = await store.call(
            store.store.drop_events, batch.batch_id, rowids, reason, self._clock.now(), dead_letter
        )
        if offers:
            await self._offers_settled(offers)
