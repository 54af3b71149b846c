"""A portal's mailbox: what the host's delivery scheduler knows of one portal's streams.

An idle portal costs this small record and nothing else: no task, no event, no timer. The
scheduler (``engine.delivery.scheduler``) does the work for every mailbox of the host: it
forms batches across many ready streams at once and delivers them concurrently.

A sequential queue has one stream: one batch in flight, the next formed only after the
portal took the previous one (or it left for dead letters). A parallel queue has K streams;
a dialog always maps to the same stream, so its order holds while the streams run side by
side. A failing portal only ever stalls its own streams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from engine.config import PortalConfig
from engine.store.records import Batch

if TYPE_CHECKING:
    from engine.delivery.flight import Flight
    from engine.delivery.scheduler import DeliveryScheduler

OffersSettled = Callable[[list[str]], Awaitable[None]]
"""Told the ids of offer events that reached the portal (or were given up on): the
router starts their accept timeouts then, not when it made the offer."""


class PortalMailbox:
    """One portal's streams as the scheduler tracks them, per stream: events stored and not
    yet in a batch (a count the store has the truth of), the batch in flight, whether the
    stream waits for its linger or its turn. ``generation`` changes when the streams are
    rebuilt (a new stream count) or the mailbox stops: what was under way for the old ones
    is then only written down, never continued."""

    __slots__ = (
        "_scheduler",
        "flights",
        "generation",
        "offers_settled",
        "pending",
        "portal",
        "resumed",
        "resuming",
        "scheduled",
        "stopped",
    )

    def __init__(
        self, portal: PortalConfig, scheduler: DeliveryScheduler, offers_settled: OffersSettled
    ) -> None:
        self.portal = portal
        self.offers_settled = offers_settled
        self._scheduler = scheduler
        self.generation = 0
        self.stopped = False
        self.pending: list[int] = []
        self.flights: list[Flight | None] = []
        self.scheduled: list[bool] = []
        """Per stream: waiting for its linger, for a free slot or for its claim."""
        self.resumed: list[deque[Batch]] | None = None
        """Per stream, batches a restart left open, oldest first, until they are all done."""
        self.resuming = 0

    @property
    def stream_count(self) -> int:
        return self.portal.streams if self.portal.queue == "parallel" else 1

    @property
    def id(self) -> str:
        return self.portal.id

    @property
    def idle(self) -> bool:
        """No event waiting for a batch, no batch in flight or left open by a restart."""
        return not (any(self.pending) or any(self.flights) or self.resuming or self.resumed)

    def reset(self, streams: int) -> None:
        """``streams`` empty streams (none: the streams are being rebuilt or stopped, and
        whatever is stored for them is read again)."""
        self.pending = [0] * streams
        self.flights = [None] * streams
        self.scheduled = [False] * streams
        self.resumed = None
        self.resuming = 0

    def notify(self, stream_hashes: Sequence[int]) -> None:
        """New events were stored for this portal (their dialogs' stream hashes)."""
        if self.stopped or not self.pending:
            return
        streams = len(self.pending)
        touched = set()
        for value in stream_hashes:
            stream = value % streams
            self.pending[stream] += 1
            touched.add(stream)
        for stream in touched:
            self._scheduler.schedule(self, stream)

    async def reconfigure(self, portal: PortalConfig) -> None:
        """Apply a changed portal config: linger, batch size, delivery kind and endpoint
        take effect from the next batch; a new stream count rebuilds the streams from the
        store (open batches first, as after a restart)."""
        streams_before = self.stream_count
        self.portal = portal
        if self.stream_count != streams_before and not self.stopped:
            await self._scheduler.restart(self)
