"""The logic of one portal actor: a store and the delivery scheduler its portals share, and
per hosted portal its router, mailbox and reply sender.

The router (``engine.routing.portal_router``) owns the portal's dialogs and puts events into
their streams; the mailbox records the streams, and the host's one ``DeliveryScheduler``
delivers every mailbox's streams (``engine.delivery.scheduler``); the reply sender sends
replies to customers. All share the actor's one SQLite file, so a routing step and the
events it produces commit together. An idle portal costs its records, no task.

**Dormant portals.** A portal whose store holds nothing to do (``PortalStartup.idle``: no
message to route or deliver, no reply to send, no open dialog, no block, no operator online)
is not started: the host keeps its config alone, about 3 KB instead of the 12 KB of a
started router, mailbox and sender, until something comes for it (a customer's message, an
API call). It then starts from what its store held when it fell asleep, kept (its offline
operators and send buckets, when it has any) rather than read again: everything that
changes a portal's rows goes through this host, which wakes the portal first, and a
message just appended is found by the router's first read of its inbox. With thousands of
portals most are dormant most of the time (``docs/architecture.md``, "Scale").

A started portal falls asleep again (``sleep_quiet``) once nothing asked for it for
``QUIET_BEFORE_SLEEP_S`` of the engine's clock and its store holds nothing to do, read
again for that: after a busy day, the portals whose dialogs closed and whose operators went
home cost what they cost before it. Callers that come while it falls asleep wait for that
and then start it again.

The Ray actor (``actors.portal``) is a thin shell around this class; tests drive it
directly with a manual clock, a real SQLite file and real HTTP stand-ins.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import aiohttp

from engine.clock import Clock
from engine.config import PortalConfig
from engine.delivery.mailbox import PortalMailbox
from engine.delivery.replies import ChannelLookup, ReplySender
from engine.delivery.scheduler import MAX_IN_FLIGHT, DeliveryScheduler
from engine.delivery.sealer import BatchSealer
from engine.delivery.transport import DeliveryTransport
from engine.errors import AuthError, EngineError, NotFoundError
from engine.handoff import Watermarks
from engine.metrics import Counters
from engine.routing.portal_router import PortalRouter
from engine.routing.rules import RuleSet
from engine.routing.windows import ReplyWindow
from engine.routing.workflow import ReplyConditions
from engine.store.base import OutboxStore
from engine.store.records import DeadLetter, OutboxRecord, PortalStartup
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 600.0
"""API request ids are remembered this long: longer than the 300 s timestamp tolerance."""

SEEN_RETENTION_S = 3 * 86_400.0
"""Channel event ids are remembered this long (Telegram keeps updates for 24 h)."""

START_TOGETHER = 500
"""Portals started side by side (an idle one starts without a store call of its own)."""

DECISION_RETENTION_S = 30 * 86_400.0
"""Routing decisions (explanations) are kept this long."""

QUIET_BEFORE_SLEEP_S = 900.0
"""A started portal nothing asked for this long (engine clock) may fall asleep again."""


class HostedPortal:
    """One portal's parts inside a host."""

    __slots__ = ("asked_at", "asks", "mailbox", "router", "sender")

    def __init__(
        self, mailbox: PortalMailbox, sender: ReplySender, router: PortalRouter, now: float
    ) -> None:
        self.mailbox = mailbox
        self.sender = sender
        self.router = router
        self.asked_at = now
        """When something last asked for the portal (engine clock): a call, a message."""
        self.asks = 0
        """How many times: a sleep tells an ask during its store read by this, even on a
        clock that does not move."""

    def ask(self, now: float) -> None:
        self.asked_at = now
        self.asks += 1

    @property
    def quiet(self) -> bool:
        """Nothing to do in memory; the store is asked before it sleeps all the same."""
        return self.router.quiet and self.sender.idle and self.mailbox.idle


class PortalGauges(NamedTuple):
    """What ``/metrics`` reports of one portal's store (``engine.metrics``, GAUGE_HELP)."""

    outbox_depth: int
    dead_letters: int
    unrouted: int


class MailboxHost:
    def __init__(
        self,
        store_path: Path,
        clock: Clock,
        transport: DeliveryTransport,
        sealer: BatchSealer,
        channel_for: ChannelLookup,
        session: aiohttp.ClientSession,
        counters: Counters | None = None,
        rng: random.Random | None = None,
        synchronous: str = "FULL",
        watermarks: Watermarks | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.counters = counters or Counters()
        self.watermarks = watermarks or Watermarks.none()
        """How far each channel actor has handed over (``engine.handoff``): none without
        channel actors (tests that append directly), when every row is routed at once."""
        self._clock = clock
        self._store: ThreadedStore[OutboxStore] = ThreadedStore(
            SqliteOutbox(store_path, synchronous), clock, "outbox"
        )
        self._channel_for = channel_for
        self._session = session
        self._rng = rng or random.Random()
        self._delivery = DeliveryScheduler(
            self._store, transport, sealer, clock, self.counters, self._rng, max_in_flight
        )
        """Delivers every hosted portal's streams; ``max_in_flight``: POSTs at once."""
        self._portals: dict[str, HostedPortal] = {}
        self._dormant: dict[str, PortalConfig] = {}
        """Portals served but not started (see the module docstring)."""
        self._asleep: dict[str, PortalStartup] = {}
        """What a dormant portal starts from, when it is more than ``PortalStartup.nothing``."""
        self._waking: dict[str, asyncio.Future[None]] = {}
        self._falling_asleep: dict[str, asyncio.Future[None]] = {}
        """Portals whose parts are being stopped (``sleep_quiet``): callers wait, then wake them."""
        self._reshaping = asyncio.Lock()
        """Held by ``configure``, ``sleep_quiet`` and ``close``: which portals are served and
        which are started change under one of them at a time."""
        self._rules = RuleSet()

    @property
    def portal_ids(self) -> list[str]:
        return sorted([*self._portals, *self._dormant, *self._falling_asleep])

    def is_dormant(self, portal_id: str) -> bool:
        return portal_id in self._dormant

    def started(self, portal_id: str) -> HostedPortal | None:
        """A started portal's parts, or None (dormant or unknown): for a look that must not
        start it."""
        return self._portals.get(portal_id)

    async def portal(self, portal_id: str) -> HostedPortal:
        """The portal's parts, started first if it was dormant."""
        await self._settled([portal_id])
        hosted = self._portals.get(portal_id)
        if hosted is None:
            if portal_id not in self._dormant and portal_id not in self._waking:
                raise NotFoundError(f"portal {portal_id!r} is not served here yet")
            hosted = await self._wake(portal_id)
        hosted.ask(self._clock.now())
        return hosted

    async def _settled(self, portal_ids: Sequence[str]) -> None:
        """Wait until none of these portals is falling asleep."""
        for portal_id in portal_ids:
            falling = self._falling_asleep.get(portal_id)
            if falling is not None:
                await asyncio.shield(falling)

    async def router(self, portal_id: str) -> PortalRouter:
        return (await self.portal(portal_id)).router

    async def _wake(self, portal_id: str) -> HostedPortal:
        """Start a dormant portal once, however many callers want it at the same time."""
        await self._wake_many([portal_id])
        hosted = self._portals.get(portal_id)
        if hosted is None:
            raise NotFoundError(f"portal {portal_id!r} was removed")
        return hosted

    async def _wake_many(self, portal_ids: Sequence[str]) -> None:
        """Start these dormant portals (those already starting are waited for)."""
        loop = asyncio.get_running_loop()
        waiting = [self._waking[p] for p in portal_ids if p in self._waking]
        mine = [p for p in portal_ids if p in self._dormant and p not in self._waking]
        started = loop.create_future()
        for portal_id in mine:
            self._waking[portal_id] = started
        try:
            configs = [self._dormant.pop(p) for p in mine]
            startups = {
                c.id: replace(self._asleep.pop(c.id, PortalStartup.nothing()), inbox=1)
                for c in configs
            }
            try:
                await asyncio.gather(*(self._start_portal(c, startups[c.id]) for c in configs))
            except BaseException:
                for config in configs:  # not started: dormant again, tried next time
                    if config.id not in self._portals:
                        self._dormant[config.id] = config
                        self._asleep[config.id] = startups[config.id]
                raise
            started.set_result(None)
        except BaseException as exc:
            started.set_exception(exc)
            started.exception()  # read: no "never retrieved" warning when no one else waited
            raise
        finally:
            for portal_id in mine:
                del self._waking[portal_id]
        for other in waiting:
            await asyncio.shield(other)

    async def configure(self, portals: Sequence[PortalConfig]) -> None:
        """Start, update or stop portals so that exactly ``portals`` are served."""
        async with self._reshaping:
            await self._configure({portal.id: portal for portal in portals})

    async def _configure(self, wanted: dict[str, PortalConfig]) -> None:
        for portal_id in set(self._waking) - set(wanted):  # removed while it starts
            await asyncio.gather(asyncio.shield(self._waking[portal_id]), return_exceptions=True)
        for portal_id in set(self._portals) - set(wanted):
            await self._stop_portal(portal_id)
        for portal_id in set(self._dormant) - set(wanted):
            del self._dormant[portal_id]
            self._asleep.pop(portal_id, None)
        for portal_id in set(self._dormant) & set(wanted):
            self._dormant[portal_id] = wanted[portal_id]
        new = [
            portal
            for portal in wanted.values()
            if portal.id not in self._portals and portal.id not in self._dormant
        ]
        # Started side by side: what the store holds for all of them is one bulk read; a
        # portal with something to do at once (a timer due, a routing step) makes a store
        # call of its own, latency more than work. The cyclic collector is paused meanwhile:
        # starting thousands of portals allocates objects that all live on, and its full
        # collections over a growing heap made the start quadratic.
        collecting = gc.isenabled()
        gc.disable()
        try:
            startups = await self._store.call(self._store.store.startup, [p.id for p in new])
            active = [p for p in new if not startups[p.id].idle]
            for portal in new:
                startup = startups[portal.id]
                if startup.idle:
                    self._dormant[portal.id] = portal
                    if startup.operators or startup.send_buckets:
                        self._asleep[portal.id] = startup
            for first in range(0, len(active), START_TOGETHER):
                await asyncio.gather(
                    *(
                        self._start_portal(p, startups[p.id])
                        for p in active[first : first + START_TOGETHER]
                    )
                )
        finally:
            if collecting:
                gc.enable()
        for portal_id, hosted in self._portals.items():
            portal = wanted[portal_id]
            if hosted.mailbox.portal != portal:
                await hosted.mailbox.reconfigure(portal)

    async def set_rules(self, rules: RuleSet) -> None:
        """A new rules snapshot: every hosted portal's router takes its part."""
        self._rules = rules
        for portal_id, hosted in self._portals.items():
            await hosted.router.rules_changed(rules.for_portal(portal_id))

    async def _start_portal(self, portal: PortalConfig, startup: PortalStartup) -> None:
        sender: ReplySender

        def config() -> PortalConfig:
            return mailbox.portal

        async def offers_settled(event_ids: list[str]) -> None:
            await router.offers_settled(event_ids)

        mailbox = PortalMailbox(portal, self._delivery, offers_settled)
        router = PortalRouter(
            config,
            self._store,
            self._rules.for_portal(portal.id),
            self._clock,
            self.counters,
            mailbox.notify,
            lambda reply: sender.enqueue(reply),
            self.watermarks,
            self._reply_terms,
        )
        sender = ReplySender(
            config,
            self._store,
            router.settle_reply,
            self._channel_for,
            self._session,
            self._clock,
            self.counters,
            self._rng,
            note_queued=router.reply_queued,
        )
        self._portals[portal.id] = HostedPortal(mailbox, sender, router, self._clock.now())
        self._delivery.load(mailbox, startup)
        await sender.start(startup.replies, startup.send_buckets)
        await router.start(startup)

    def _reply_terms(self, connector_id: str, dialog_key: str) -> ReplyConditions:
        """What the connector's channel says about replies in one dialog. A removed
        connector says nothing: its replies are stored and fail when sent, as they always
        did."""
        try:
            channel = self._channel_for(connector_id)
        except EngineError:
            return ReplyConditions()
        # Read defensively, like ``idempotent_sends``: it is asked for every customer message
        # (``window_closes_at``), and a plug-in that does not say has neither.
        window_for = getattr(channel, "reply_window_for", None)
        window = window_for(dialog_key) if callable(window_for) else None
        form_for = getattr(channel, "outside_window_form", None)
        form = form_for(dialog_key) if callable(form_for) else None
        return ReplyConditions(
            shows_sender=bool(getattr(channel, "shows_sender", False)),
            window=window if isinstance(window, ReplyWindow) else None,
            outside_window_form=form if isinstance(form, str) and form else None,
        )

    async def _stop_portal(self, portal_id: str) -> None:
        self._asleep.pop(portal_id, None)
        if self._dormant.pop(portal_id, None) is not None:
            return
        hosted = self._portals.pop(portal_id, None)
        if hosted is not None:
            await self._stop_parts(hosted)

    async def _stop_parts(self, hosted: HostedPortal) -> None:
        await hosted.router.stop()
        await hosted.sender.stop()
        await self._delivery.remove(hosted.mailbox)

    async def sleep_quiet(self) -> list[str]:
        """Put to sleep the started portals nothing asked for in ``QUIET_BEFORE_SLEEP_S``
        whose store holds nothing to do (``PortalStartup.idle``, read again now); returns
        them. Everything that changes a portal's rows asks for it first (``portal``,
        ``append``), so one asked for during the read stays started."""
        async with self._reshaping:
            return await self._sleep_quiet()

    async def _sleep_quiet(self) -> list[str]:
        began = self._clock.now()
        candidates = [
            portal_id
            for portal_id, hosted in self._portals.items()
            if began - hosted.asked_at >= QUIET_BEFORE_SLEEP_S and hosted.quiet
        ]
        if not candidates:
            return []
        asks = {portal_id: self._portals[portal_id].asks for portal_id in candidates}
        startups = await self._store.call(self._store.store.startup, candidates)
        asleep: dict[str, HostedPortal] = {}
        for portal_id in candidates:
            hosted = self._portals.get(portal_id)
            startup = startups[portal_id]
            if hosted is None or hosted.asks != asks[portal_id]:
                continue  # asked for meanwhile
            if not hosted.quiet or not startup.idle:
                continue
            del self._portals[portal_id]  # no await since the checks: no caller got in
            self._falling_asleep[portal_id] = asyncio.get_running_loop().create_future()
            asleep[portal_id] = hosted
            if startup.operators or startup.send_buckets:
                self._asleep[portal_id] = startup
        try:
            for portal_id, hosted in asleep.items():
                try:
                    await self._stop_parts(hosted)
                except Exception:  # its tasks were cancelled all the same: it sleeps
                    log.exception("portal %s: stopping its parts to sleep failed", portal_id)
        finally:  # every one, or its callers would wait for ever
            for portal_id, hosted in asleep.items():
                self._dormant[portal_id] = hosted.mailbox.portal
                self._falling_asleep.pop(portal_id).set_result(None)
        if asleep:
            log.info("%d quiet portals asleep again", len(asleep))
        return sorted(asleep)

    async def append(
        self, records: Sequence[OutboxRecord], source: int = -1, watermark: float = 0.0
    ) -> list[bool]:
        """Store records in the inbox durably (group commit); False for a duplicate.

        ``source`` is the channel actor that hands them over, ``watermark`` the time before
        which it has nothing more for this actor. Counts what was stored and what this
        portal already had (a provider's retry that reached another channel actor); the
        channel actors count the rest.
        """
        now = self._clock.now()
        for record in records:  # before the store call: no sleep may miss what it adds
            hosted = self._portals.get(record.portal_id)
            if hosted is not None:
                hosted.ask(now)
        accepted = await self._store.append(records)
        if source >= 0:
            self.watermarks.advance(source, watermark)
        tally = Counter(
            (
                "openlines_stored_total" if new else "openlines_duplicates_total",
                r.conversation.channel,
            )
            for r, new in zip(records, accepted, strict=True)
        )
        for (name, channel), count in tally.items():
            self.counters.inc(name, count, channel=channel)
        news = {r.portal_id for r, new in zip(records, accepted, strict=True) if new}
        await self._settled(list(news))
        dormant = [p for p in news if p in self._dormant or p in self._waking]
        if dormant:
            try:
                await self._wake_many(dormant)  # each reads its inbox as it starts
            except Exception:  # stored all the same: the next message or call starts it
                log.exception("starting %d dormant portals failed", len(dormant))
                self.counters.inc("openlines_rejected_total", reason="routing_error")
        for portal_id in news:
            hosted = self._portals.get(portal_id)
            if hosted is not None:
                hosted.router.wake()
        return accepted

    async def check_request(self, portal_id: str, request_id: str) -> None:
        """Refuse an API request id this portal already used (a replay)."""
        fresh = await self._store.call(
            self._store.store.remember_request,
            portal_id,
            request_id,
            self._clock.now(),
            REPLAY_WINDOW_S,
        )
        if not fresh:
            raise AuthError(f"request id {request_id!r} was already used (replay)")

    async def dead_letters(
        self, portal_id: str, request_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]:
        await self.check_request(portal_id, request_id)
        return await self._store.call(
            self._store.store.dead_letters, portal_id, limit, after_event_id
        )

    async def gauges(self) -> dict[str, PortalGauges]:
        """Per portal: its outbox depth, dead letters and routing's backlog."""
        store = self._store.store

        def one(portal_id: str) -> PortalGauges:
            unrouted, routed = store.backlog(portal_id)
            return PortalGauges(unrouted + routed, store.dead_letter_count(portal_id), unrouted)

        def read() -> dict[str, PortalGauges]:
            return {
                portal_id: one(portal_id)
                for portal_id in sorted(set(self.portal_ids) | store.portal_ids())
            }

        return await self._store.call(read)

    def routing_gauges(self) -> dict[str, tuple[dict[tuple[str, str], int], int]]:
        """Per portal: open dialogs by (line, state), and operators online."""
        result: dict[str, tuple[dict[tuple[str, str], int], int]] = {}
        for portal_id, hosted in self._portals.items():
            board = hosted.router.dispatcher.board
            counts: dict[tuple[str, str], int] = {}
            for dialog in board.dialogs.values():
                key = (dialog.line_id, dialog.state)
                counts[key] = counts.get(key, 0) + 1
            online = sum(1 for op in board.operators.values() if op.status == "online")
            result[portal_id] = (counts, online)
        for portal_id in self._dormant:  # no dialog and no one online, by definition
            result[portal_id] = ({}, 0)
        return result

    def open_dialog_keys(self) -> dict[str, set[str]]:
        """Per connector, the conversations (dialog keys) of every hosted portal's open
        dialogs: what a channel's own retention must spare (docs/channels/widget.md)."""
        keys: dict[str, set[str]] = {}
        for hosted in self._portals.values():
            for dialog in hosted.router.dispatcher.board.dialogs.values():
                keys.setdefault(dialog.connector_id, set()).add(dialog.dialog_key)
        return keys

    async def prune(self) -> int:
        store = self._store.store
        now = self._clock.now()
        seen = await self._store.call(store.prune_seen, now - SEEN_RETENTION_S)
        return seen + await self._store.call(store.prune_decisions, now - DECISION_RETENTION_S)

    async def close(self) -> None:
        async with self._reshaping:
            self._dormant.clear()
            self._asleep.clear()
            for portal_id in list(self._portals):
                await self._stop_portal(portal_id)
            await self._delivery.close()
            await self._store.close()
