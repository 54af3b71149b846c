"""Handing a channel actor's acknowledged records to their portal actors, after the 2xx.

Off the acknowledgement path: the intake (``engine.store.intake``) already holds every
record durably. Each round takes, per destination, the oldest records waiting, makes one
call per destination with all of them (batched across webhooks and portals), and forgets
the records the destination stored. A destination that fails (restarting, overloaded) is
tried again after a growing pause while the others carry on; its records wait in the
intake in their order, so nothing acknowledged is lost and nothing overtakes within a
destination.

Order across channel actors. A chat's webhooks may reach different channel actors, whose
hand-offs race: a message acknowledged first could reach the portal's inbox second. So
every hand-off carries a **watermark**: a time before which this channel actor has nothing
more for that destination (no record waiting in its intake, no webhook still being stored).
The portal's router moves a message from its inbox into its dialog's stream only once every
channel actor's watermark has passed the message's ``received_at`` (``Watermarks``), then
puts each dialog's messages in the channel's own order. A channel actor that sent nothing
lately is asked for its watermark; one that does not answer (restarting) is waited for
only ``GIVE_UP_S``, after which routing goes on without it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from engine.errors import UnavailableError
from engine.metrics import Counters
from engine.store.intake import IntakeRow, IntakeStore
from engine.store.records import OutboxRecord
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

Send = Callable[[str, list[OutboxRecord], float], Awaitable[list[bool]]]
"""Stores records in a destination's inbox with the sender's watermark for it (the inbox
counts what it stored and what it already had); per record, False for a duplicate there."""

Floor = Callable[[], float]
"""The earliest ``received_at`` a record still being stored (its webhook in progress) can
have: the start of the oldest webhook in progress, or now (``InProgress.floor``)."""


class InProgress:
    """Webhooks being handled by a channel actor, by the time each started.

    A webhook's records get their ``received_at`` after it started, so the oldest start is a
    bound for every record not yet in the intake.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._started: dict[int, float] = {}
        self._tokens = itertools.count()

    def start(self) -> int:
        token = next(self._tokens)
        self._started[token] = self._now()
        return token

    def finish(self, token: int) -> None:
        self._started.pop(token, None)

    def floor(self) -> float:
        now = self._now()
        return min(now, min(self._started.values(), default=now))


FIRST_PAUSE_S = 0.05
LONGEST_PAUSE_S = 2.0
PULL_AFTER_S = 0.002
"""How long routing waits for hand-offs to move a watermark before asking for it."""
GIVE_UP_S = 15.0
"""How long a silent channel actor is waited for before routing goes on without it: long
enough for Ray to restart it and for it to hand over what it acknowledged before dying (its
intake is on disk), so order holds through a crash; short enough that a channel actor gone
for good (its node lost) stalls routing only briefly."""


class Handoff:
    """Hands acknowledged records to their portal actors, oldest first per destination.

    The records wait in memory as well as in the intake: the intake is read once, at start
    (``load``: what a previous run left), and afterwards the webhook that committed records
    gives them here (``add``), so the intake's one thread does only the group commits and
    the deletions of what was handed over.
    """

    def __init__(
        self,
        store: ThreadedStore[IntakeStore],
        send: Send,
        batch_max: int,
        counters: Counters,
        floor: Floor,
    ) -> None:
        self._store = store
        self._send = send
        self._floor = floor
        self._batch_max = batch_max
        self._counters = counters
        self._wake = asyncio.Event()
        self._queued: dict[str, deque[IntakeRow]] = {}
        self._loaded = False
        self._pause_s: dict[str, float] = {}
        """Destinations that failed, with the pause before trying them again."""
        self._retry_at: dict[str, float] = {}

    async def load(self) -> None:
        """What the intake holds from a previous run; before the first ``add``."""
        store = self._store.store
        destinations = await self._store.call(store.destinations)
        found = await self._store.call(store.pending_by_destination, destinations, None)
        for destination, rows in found.items():
            self._queued.setdefault(destination, deque()).extend(rows)
        self._loaded = True
        self._wake.set()

    def add(self, rows: Sequence[IntakeRow]) -> None:
        """Records just committed to the intake (their webhook is still in progress)."""
        assert self._loaded, "load() the intake first"
        for row in rows:
            self._queued.setdefault(row.destination, deque()).append(row)
        self._wake.set()

    def waiting(self) -> int:
        return sum(len(rows) for rows in self._queued.values())

    async def run(self) -> None:
        """Hand off until cancelled; a failed round is logged, counted and tried again."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                try:
                    more = await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a loop boundary: the records stay in the intake
                    log.exception("handing records to portal actors failed")
                    self._counters.inc("openlines_rejected_total", reason="handoff_error")
                    more = True
                    await asyncio.sleep(FIRST_PAUSE_S)
                if not more:
                    break
                await self._pause_for_failed()

    async def drain(self, timeout_s: float) -> int:
        """Hand off what is waiting (a clean stop); returns how many records remain."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._retry_at.clear()
        while loop.time() < deadline and await self._round():
            await asyncio.sleep(0)
        return self.waiting()

    def watermark(self, destination: str) -> float:
        """Nothing older than this is still to come from here for ``destination``.

        Refused until ``load`` has read the intake: a restarted channel actor asked while
        it reads would otherwise answer "nothing older than now" for records it
        acknowledged before dying, and the portal would route newer ones ahead of them.
        """
        if not self._loaded:
            raise UnavailableError("the intake is still being read: no watermark yet")
        floor = self._floor()
        rows = self._queued.get(destination)
        return min(floor, rows[0].record.received_at) if rows else floor

    async def _round(self) -> bool:
        """One call per destination; True while records are still waiting."""
        # Taken before looking at the queues: a record older than this is either in them
        # (committed and added) or its webhook is in progress (and the floor is older).
        floor = self._floor()
        now = asyncio.get_running_loop().time()
        ready = [
            d for d, rows in self._queued.items() if rows and self._retry_at.get(d, 0.0) <= now
        ]
        if ready:
            outcomes = await asyncio.gather(*(self._hand(d, floor) for d in ready))
            done = [rowid for rowids in outcomes for rowid in rowids]
            if done:
                await self._store.call(self._store.store.forget, done)
        return self.waiting() > 0

    async def _hand(self, destination: str, floor: float) -> list[int]:
        """The rowids the destination stored, or none if it failed."""
        rows = self._queued[destination]
        batch = list(itertools.islice(rows, self._batch_max))
        # The oldest record left behind bounds the mark, if one is.
        mark = min(floor, rows[len(batch)].record.received_at) if len(rows) > len(batch) else floor
        try:
            accepted = await self._send(destination, [row.record for row in batch], mark)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the destination's failure; its records wait
            pause = min(LONGEST_PAUSE_S, self._pause_s.get(destination, FIRST_PAUSE_S / 2) * 2)
            self._pause_s[destination] = pause
            self._retry_at[destination] = asyncio.get_running_loop().time() + pause
            log.warning(
                "handing %d records to %s failed, again in %.2f s: %s",
                len(batch),
                destination,
                pause,
                exc,
            )
            self._counters.inc("openlines_handoff_failed_total", destination=destination)
            return []
        if len(accepted) != len(batch):
            raise ValueError(f"{destination} answered {len(accepted)} results for {len(batch)}")
        for _ in batch:  # they are at the front: only this round takes from it
            rows.popleft()
        self._pause_s.pop(destination, None)
        self._retry_at.pop(destination, None)
        return [row.rowid for row in batch]

    async def _pause_for_failed(self) -> None:
        """Before another round, wait for the earliest failed destination, if only they wait."""
        if not self._retry_at:
            return
        wait_s = min(self._retry_at.values()) - asyncio.get_running_loop().time()
        if wait_s > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except TimeoutError:
                pass


class Watermarks:
    """The portal side: per channel actor, the time before which it handed everything over.

    ``release_before`` is the time up to which the inbox is complete. A channel actor is
    heard from with every hand-off; ``settle`` asks the silent ones (``pull``) when routing
    waits on them, and leaves out one that has not answered for ``give_up_s``.
    """

    def __init__(
        self,
        sources: int,
        pull: Callable[[int], Awaitable[float]],
        give_up_s: float = GIVE_UP_S,
        pull_after_s: float = PULL_AFTER_S,
    ) -> None:
        self._marks: list[float | None] = [None] * sources
        self._pull = pull
        self._give_up_s = give_up_s
        self._pull_after_s = pull_after_s
        self._silent_since: dict[int, float] = {}
        self._absent: set[int] = set()
        self._advanced = asyncio.Event()
        """Replaced (after being set) at every advance: every waiter sees its own."""
        self._unsatisfied = 0

    @classmethod
    def none(cls) -> Watermarks:
        """No channel actor feeds this host (records are appended directly): every row is
        complete at once."""
        return cls(0, _no_source)

    def advance(self, source: int, mark: float) -> None:
        if 0 <= source < len(self._marks):
            current = self._marks[source]
            self._marks[source] = mark if current is None else max(current, mark)
            self._absent.discard(source)
            self._silent_since.pop(source, None)
            self._advanced.set()
            self._advanced = asyncio.Event()

    def release_before(self) -> float:
        """Inbox rows received at or before this are all there; route them."""
        present = [m for i, m in enumerate(self._marks) if i not in self._absent]
        known = [m for m in present if m is not None]
        if len(known) < len(present):
            return -float("inf")
        return min(known, default=float("inf"))

    async def settle(self, needed: float) -> None:
        """Wait briefly for hand-offs to pass ``needed``, then ask the lagging sources.

        The wait grows while asking does not help (a channel actor with a backlog for this
        actor), so a held row costs a few calls, not a busy loop.
        """
        if self.release_before() >= needed:
            self._unsatisfied = 0
            return
        wait_s = min(LONGEST_PAUSE_S / 10, self._pull_after_s * 2**self._unsatisfied)
        try:
            await asyncio.wait_for(self._advanced.wait(), wait_s)
            return
        except TimeoutError:
            self._unsatisfied = min(self._unsatisfied + 1, 16)
        lagging = [
            i
            for i, mark in enumerate(self._marks)
            if i not in self._absent and (mark is None or mark < needed)
        ]
        await asyncio.gather(*(self._ask(source) for source in lagging))

    async def _ask(self, source: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            mark = await asyncio.wait_for(self._pull(source), self._give_up_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a channel actor down or restarting: not waited for long
            since = self._silent_since.setdefault(source, loop.time())
            if loop.time() - since >= self._give_up_s:
                log.warning("routing goes on without channel actor %d: %s", source, exc)
                self._absent.add(source)
            return
        self.advance(source, mark)


async def _no_source(source: int) -> float:
    raise LookupError(f"no channel actor {source} feeds this host")
