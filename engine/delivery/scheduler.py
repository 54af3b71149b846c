"""The host's delivery scheduler: every hosted portal's streams delivered by one loop.

Who owns what. The router of a portal puts events into its streams and tells the portal's
``PortalMailbox`` (``notify``); the mailbox is only a record. This scheduler owns the work:
which streams are ready, the waits (linger, retries), the batches in flight, and the writes.

One round, one transaction. Each turn of the loop takes whatever came up since the last
one and writes it in ONE store call (``OutboxStore.write_delivery``): the outcomes of the
attempts that ended (acknowledgements, retry times, drops), the attempts about to start
(retries due, batches a restart left open), and a batch claimed for every stream that is
ready, its first attempt counted in the same transaction (so ``attempt`` still grows across
restarts). While a round is written, the next one gathers, as in a group commit. Only after
the commit are the POSTs sent, and only after an acknowledgement is durable is the router
told of the offers it carried (``offers_settled``: accept timeouts start then).

Order. A stream has at most one batch in flight, from its claim until the portal took it
or its events left for dead letters: a sequential queue (one stream) has one batch in
flight, a parallel queue (K streams, a dialog always on the same one) up to K, so per-dialog
order and the per-portal ``seq`` without gaps hold as docs/protocol.md says. A portal
restarted with batches left open delivers them first, stream by stream, before any newer
batch of it is formed.

Bounds and isolation. At most ``max_in_flight`` POSTs run at once for the whole host (the
HTTP session's connection limit); a batch waiting for its retry holds no slot, so a portal
that is down or slow stalls only its own streams. A round claims at most ``ROUND_MAX``
streams. A shared write that fails is retried member by member (STYLE.md: a batch shares
work, never failure); a member that fails alone is tried again a second later, nothing
ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from engine.clock import Clock
from engine.delivery import attempts
from engine.delivery.envelope import batch_plaintext
from engine.delivery.flight import Flight, FlightWrite, StreamClaim
from engine.delivery.mailbox import PortalMailbox
from engine.delivery.notices import OfferNotices
from engine.delivery.ordering import in_channel_order
from engine.delivery.sealer import BatchSealer
from engine.delivery.timers import Timers
from engine.delivery.transport import DeliveryOutcome, DeliveryTransport
from engine.ids import new_id
from engine.metrics import Counters
from engine.store.base import OutboxStore
from engine.store.records import Batch, BatchClaim, PortalStartup, Written
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 100
"""POSTs at once per host by default: aiohttp's default connection limit per session."""
ROUND_MAX = 1000
"""Streams claimed and attempts started per round: a round stays a short transaction."""
STEP_RETRY_S = 1.0
"""A failed step (a store error, a key that cannot be sealed to) is tried again this much
later: everything stays stored, so trying again is safe."""


class DeliveryScheduler:
    def __init__(
        self,
        store: ThreadedStore[OutboxStore],
        transport: DeliveryTransport,
        sealer: BatchSealer,
        clock: Clock,
        counters: Counters,
        rng: random.Random | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._store = store
        self._transport = transport
        self._sealer = sealer
        self._clock = clock
        self._counters = counters
        self._rng = rng or random.Random()
        self._max_in_flight = max_in_flight
        self._ready: deque[tuple[PortalMailbox, int, int]] = deque()
        self._due: deque[Flight] = deque()
        self._outcomes: list[FlightWrite] = []
        self._timers = Timers()
        self._in_flight = 0
        """Slots taken: POSTs running, and attempts of the round being written."""
        self._wake = asyncio.Event()
        self._round_lock = asyncio.Lock()
        self._posts: set[asyncio.Task[None]] = set()
        self._notices = OfferNotices(counters)
        self._loop: asyncio.Task[None] | None = None
        self._closed = False

    # -- mailboxes ---------------------------------------------------------------------------

    def load(self, mailbox: PortalMailbox, startup: PortalStartup) -> None:
        """Take a started mailbox's streams as the store holds them: counts of pending
        events, and batches a restart left open (delivered first)."""
        streams = mailbox.stream_count
        mailbox.reset(streams)
        for stream_hash, count in startup.pending_by_hash.items():
            mailbox.pending[stream_hash % streams] += count
        if startup.open_batches:
            # A changed stream count maps their dialogs to other streams, whose newer
            # events must not overtake them: no new batch until every one is done.
            resumed: list[deque[Batch]] = [deque() for _ in range(streams)]
            for batch in startup.open_batches:
                resumed[batch.stream % streams].append(batch)
            mailbox.resumed = resumed
            mailbox.resuming = len(startup.open_batches)
            for stream in range(streams):
                self._resume_next(mailbox, stream)
        else:
            for stream in range(streams):
                self.schedule(mailbox, stream)

    def schedule(self, mailbox: PortalMailbox, stream: int) -> None:
        """Events wait on ``stream``: it becomes ready after its linger (at once when a
        full batch waits or the portal has none), unless it is busy or blocked."""
        if (
            mailbox.stopped
            or mailbox.resuming
            or mailbox.flights[stream] is not None
            or mailbox.scheduled[stream]
            or mailbox.pending[stream] <= 0
        ):
            return
        mailbox.scheduled[stream] = True
        portal = mailbox.portal
        if portal.linger_ms > 0 and mailbox.pending[stream] < portal.batch_max_events:
            self._ready_at(self._clock.now() + portal.linger_ms / 1000, mailbox, stream)
        else:
            self._ready.append((mailbox, stream, mailbox.generation))
            self._kick()

    async def restart(self, mailbox: PortalMailbox) -> None:
        """Rebuild a mailbox's streams from the store (its stream count changed): what is
        under way is cut short as by a restart, the outcomes already known are written
        first, then open batches go before anything newer."""
        await self._retire(mailbox)
        async with self._round_lock:
            await self._write_outcomes()
            found = await self._store.call(self._store.store.startup, [mailbox.id])
            if not mailbox.stopped:
                self.load(mailbox, found[mailbox.id])

    async def remove(self, mailbox: PortalMailbox) -> None:
        """Stop delivering for the mailbox; what it has stored waits for whoever serves the
        portal next (outcomes already known are still written)."""
        mailbox.stopped = True
        await self._retire(mailbox)

    async def _retire(self, mailbox: PortalMailbox) -> None:
        """End what runs for the mailbox's streams: nothing of them is continued, and news
        is not counted (the store is read again when they are rebuilt)."""
        mailbox.generation += 1
        posts = [f.task for f in mailbox.flights if f is not None and f.task is not None]
        mailbox.reset(0)
        for task in posts:
            task.cancel()
        await asyncio.gather(*posts, return_exceptions=True)

    async def close(self) -> None:
        """Stop: POSTs under way are cut short (their batches are resent after the next
        start), outcomes already known are written."""
        self._closed = True
        tasks = [t for t in (self._loop, *self._posts) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with self._round_lock:
            try:
                await self._write_outcomes()
            except Exception:  # closing anyway: unwritten outcomes mean batches resent
                log.exception("delivery: outcomes could not be written at close")
        await self._notices.close()

    # -- the loop ----------------------------------------------------------------------------

    def _kick(self) -> None:
        self._wake.set()
        if self._loop is None and not self._closed:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with self._round_lock:
                    worked = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop boundary: every portal's delivery depends on it
                log.exception("delivery round failed")
                self._counters.inc("openlines_loop_errors_total", loop="delivery")
                await self._clock.sleep(STEP_RETRY_S)
                continue
            if not worked:
                await self._idle()

    def _has_work(self) -> bool:
        slots = self._in_flight < self._max_in_flight
        return bool(self._outcomes) or (slots and bool(self._ready or self._due))

    async def _idle(self) -> None:
        """Until something is to do: a wake-up, or the earliest timer on the clock."""
        self._wake.clear()
        if self._has_work():
            return
        next_at = self._timers.next_at()
        if next_at is None:
            await self._wake.wait()
            return
        wait_s = next_at - self._clock.now()
        if wait_s <= 0:
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(wait_s))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()

    async def _round(self) -> bool:
        """One round: due timers, then outcomes, attempts and claims in one write."""
        now = self._clock.now()
        for callback in self._timers.pop_due(now):
            callback()
        writes, self._outcomes = self._outcomes, []
        while self._due and self._in_flight < self._max_in_flight and len(writes) < ROUND_MAX:
            flight = self._due.popleft()
            if flight.current:
                write, tally = attempts.before_attempt(flight.batch, flight.mailbox.portal, now)
                writes.append(FlightWrite(flight, write, tally, start=True))
                self._in_flight += 1
        claims: list[StreamClaim] = []
        while self._ready and self._in_flight < self._max_in_flight and len(claims) < ROUND_MAX:
            mailbox, stream, generation = self._ready.popleft()
            if generation == mailbox.generation and not mailbox.stopped:
                claims.append(self._claim(mailbox, stream))
                self._in_flight += 1
        if not writes and not claims:
            return False
        await self._write(writes, claims, now)
        return True

    def _claim(self, mailbox: PortalMailbox, stream: int) -> StreamClaim:
        portal = mailbox.portal
        claim = BatchClaim(
            portal.id,
            new_id("bat"),
            stream,
            len(mailbox.pending),
            portal.batch_max_events,
            portal.delivery == "best_effort",
        )
        return StreamClaim(mailbox, stream, mailbox.generation, claim)

    async def _write_outcomes(self) -> None:
        writes, self._outcomes = self._outcomes, []
        if writes:
            await self._write(writes, [], self._clock.now())

    async def _write(
        self, writes: list[FlightWrite], claims: list[StreamClaim], now: float
    ) -> None:
        """The round in one transaction; if it fails, each member in its own."""
        try:
            written, claimed = await self._store_round(writes, claims, now)
        except Exception:
            if len(writes) + len(claims) == 1:
                self._failed(writes, claims)
                return
            log.warning(
                "delivery: a round of %d writes and %d claims failed; writing each alone",
                len(writes),
                len(claims),
                exc_info=True,
            )
            for member in writes:
                await self._write([member], [], now)
            for claim in claims:
                await self._write([], [claim], now)
            return
        for member, done in zip(writes, written, strict=True):
            self._written(member, done)
        for claim, batch in zip(claims, claimed, strict=True):
            self._claimed(claim, batch)

    async def _store_round(
        self, writes: Sequence[FlightWrite], claims: Sequence[StreamClaim], now: float
    ) -> tuple[list[Written], list[Batch | None]]:
        store = self._store
        self._counters.inc("openlines_delivery_rounds_total")
        return await store.call(
            store.store.write_delivery,
            [member.write for member in writes],
            [claim.claim for claim in claims],
            now,
            in_channel_order,
        )

    def _failed(self, writes: list[FlightWrite], claims: list[StreamClaim]) -> None:
        """A member that failed alone: logged, counted, tried again a second later."""
        later = self._clock.now() + STEP_RETRY_S
        for member in writes:
            flight = member.flight
            log.exception("portal %s: writing batch %s failed", flight.mailbox.id, member.write)
            self._counters.inc("openlines_rejected_total", reason="delivery_error")
            if member.start:
                self._in_flight -= 1
                self._due_at(later, flight)
            else:
                self._timers.at(later, partial(self._write_again, member))
        for claim in claims:
            log.exception(
                "portal %s: forming a batch of stream %d failed", claim.mailbox.id, claim.stream
            )
            self._counters.inc("openlines_rejected_total", reason="batch_error")
            self._in_flight -= 1
            self._ready_at(later, claim.mailbox, claim.stream)

    def _write_again(self, member: FlightWrite) -> None:
        """An outcome whose write failed joins the next round (a list taken by a round is
        never appended to: ``_outcomes`` is replaced every round)."""
        self._outcomes.append(member)

    # -- after a round -----------------------------------------------------------------------

    def _written(self, member: FlightWrite, done: Written) -> None:
        flight = member.flight
        mailbox = flight.mailbox
        attempts.count(self._counters, mailbox.portal, member.tally)
        if done.offers:
            self._notices.tell(mailbox, list(done.offers))
        if member.start:
            if flight.current and done.batch is not None:
                flight.batch = done.batch
                self._post(flight)
                return
            self._in_flight -= 1
            if flight.current:
                self._finish(flight)  # nothing left to send: every event expired or dropped
        elif flight.current:
            if member.waiting is None:
                self._finish(flight)
            else:
                flight.batch = member.waiting
                self._due_at(member.waiting.next_attempt_at, flight)

    def _claimed(self, claim: StreamClaim, batch: Batch | None) -> None:
        mailbox, stream = claim.mailbox, claim.stream
        if claim.generation != mailbox.generation or mailbox.stopped:
            self._in_flight -= 1  # the store keeps the batch: the rebuilt streams resume it
            return
        mailbox.scheduled[stream] = False
        if batch is None:  # the count ran ahead of the store
            self._in_flight -= 1
            mailbox.pending[stream] = 0
            return
        mailbox.pending[stream] = max(0, mailbox.pending[stream] - len(batch.events))
        flight = Flight(mailbox, stream, batch, resumed=False)
        mailbox.flights[stream] = flight
        now = self._clock.now()
        ttl = mailbox.portal.ttl_s
        if any(now >= event.received_at + ttl for event in batch.events):
            # Events that waited past their TTL before they were batched go to dead letters
            # before any attempt: the counted one did not happen.
            self._in_flight -= 1
            flight.batch = replace(batch, attempts=batch.attempts - 1)
            self._due.append(flight)
            return
        self._post(flight)

    def _finish(self, flight: Flight) -> None:
        """The flight's batch is delivered or gone: its stream takes the next one."""
        mailbox, stream = flight.mailbox, flight.stream
        mailbox.flights[stream] = None
        if not flight.resumed:
            self.schedule(mailbox, stream)
            return
        mailbox.resuming -= 1
        self._resume_next(mailbox, stream)
        if mailbox.resuming == 0:
            mailbox.resumed = None
            for each in range(len(mailbox.pending)):
                self.schedule(mailbox, each)

    def _resume_next(self, mailbox: PortalMailbox, stream: int) -> None:
        left = mailbox.resumed[stream] if mailbox.resumed is not None else None
        if left:
            flight = Flight(mailbox, stream, left.popleft(), resumed=True)
            mailbox.flights[stream] = flight
            self._due_at(flight.batch.next_attempt_at, flight)

    def _ready_at(self, when: float, mailbox: PortalMailbox, stream: int) -> None:
        generation = mailbox.generation

        def ready() -> None:
            if generation == mailbox.generation and not mailbox.stopped:
                self._ready.append((mailbox, stream, generation))

        self._timers.at(when, ready)
        self._kick()

    def _due_at(self, when: float, flight: Flight) -> None:
        def due() -> None:
            if flight.current:
                self._due.append(flight)

        self._timers.at(when, due)
        self._kick()

    # -- one attempt -------------------------------------------------------------------------

    def _post(self, flight: Flight) -> None:
        """Seal and send the flight's batch; its slot is taken already."""
        task = asyncio.get_running_loop().create_task(self._attempt(flight))
        flight.task = task
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _attempt(self, flight: Flight) -> None:
        batch, portal = flight.batch, flight.mailbox.portal
        try:
            now = self._clock.now()
            try:
                plaintext = batch_plaintext(batch, now)
                headers, body = self._sealer.seal(portal, batch.batch_id, plaintext, int(now))
            except Exception:  # a step boundary: a key that cannot be sealed to; nothing sent
                self._step_failed(flight, f"sealing batch {batch.batch_id}")
                flight.batch = replace(batch, attempts=batch.attempts - 1)
                return
            try:
                outcome = await self._transport.post(
                    portal.endpoint, headers, body, portal.request_timeout_s
                )
            except Exception:  # a step boundary: the transport's bug; the outcome is unknown
                self._step_failed(flight, f"posting batch {batch.batch_id}")
                return
        finally:
            flight.task = None
            self._in_flight -= 1
            self._kick()
        self._settle(flight, outcome)

    def _step_failed(self, flight: Flight, what: str) -> None:
        log.exception("portal %s: %s failed", flight.mailbox.id, what)
        self._counters.inc("openlines_rejected_total", reason="delivery_error")
        self._due_at(self._clock.now() + STEP_RETRY_S, flight)

    def _settle(self, flight: Flight, outcome: DeliveryOutcome) -> None:
        """The attempt's outcome joins the next round (written even if the mailbox has
        stopped meanwhile: an acknowledgement is a fact)."""
        batch, portal = flight.batch, flight.mailbox.portal
        if outcome.accepted:
            write, tally = attempts.delivered(batch)
            self._outcomes.append(FlightWrite(flight, write, tally, start=False))
            return
        log.warning(
            "portal %s batch %s attempt %d failed: %s",
            portal.id,
            batch.batch_id,
            batch.attempts,
            outcome.error,
            extra={"portal": portal.id, "batch_id": batch.batch_id, "status": outcome.status},
        )
        now = self._clock.now()
        write, tally, waiting = attempts.failed(batch, portal, outcome, now, self._rng)
        self._outcomes.append(FlightWrite(flight, write, tally, start=False, waiting=waiting))
