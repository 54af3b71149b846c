"""The router of one portal: the single owner of its dialogs' state and of their streams.

Everything that changes a dialog or puts an event into a dialog's stream goes through here,
one step at a time (an ``asyncio.Lock``): customer messages leaving the inbox, operators'
actions (``engine.routing.workflow``), timers, reply outcomes, new rules. Each step runs
the ``Dispatcher`` on the in-memory board and commits its plan in one transaction; only
then does the mailbox hear of the new events and the reply sender of the line's texts. A
failed commit reloads the board from the store, the durable truth.

Timers are derived from the dialogs (``Dispatcher.deadline``), so a restarted router
recomputes them from disk; whatever fell due while it was down fires once at start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

import orjson

from engine.api_models import ReplyBody
from engine.clock import Clock
from engine.config import PortalConfig
from engine.contacts import ContactBook, dialog_owners
from engine.crm.records import Contact
from engine.delivery.ordering import sorted_into_slots
from engine.delivery.replies import ReplyOutcome, stored_reply, target_of
from engine.errors import ConflictError, NotFoundError, ValidationFailedError
from engine.events import ReplyQueued, ReplySent
from engine.handoff import Watermarks
from engine.ids import new_id
from engine.ingest import CHANNEL_EVENT
from engine.metrics import Counters
from engine.models import (
    RECEIPT_KINDS,
    ChannelEvent,
    DialogTarget,
    InboundMessage,
    OutboundContent,
    OutboundText,
    ReplyRequest,
)
from engine.routing.choice import choose
from engine.routing.dispatcher import Dispatcher
from engine.routing.plan import Notice, Plan
from engine.routing.quick_answers import QuickAnswers
from engine.routing.reply_text import quick_answer_text
from engine.routing.rules import PortalRules
from engine.routing.state import Block, Board, DialogState, OperatorState, OperatorStatus
from engine.routing.statistics import Statistics
from engine.routing.voice import Heard, heard_of
from engine.routing.workflow import ReplyConditions, Workflow
from engine.stats.live import LiveStats
from engine.store.base import OutboxStore
from engine.store.records import (
    HistoryEvent,
    InboxRow,
    PortalStartup,
    Receipt,
    SentPart,
    StoredReply,
)
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

INBOX_BATCH = 1000
"""Messages routed per step: one transaction moves them all into their streams."""

Notify = Callable[[Sequence[int]], None]
"""Tells the mailbox that events joined streams (their stream hashes)."""
Enqueue = Callable[[StoredReply], None]
"""Hands a stored reply to the reply sender."""
ReplyTerms = Callable[[str, str], ReplyConditions]
"""What a connector's channel says about replies in one dialog (by connector id and dialog
key): whether it shows the sender, the dialog's messaging window (``last_customer_at`` is
filled in by the router)."""

T = TypeVar("T")


def receipts_of(events: Iterable[ChannelEvent]) -> list[Receipt]:
    """What channel events report of our messages: their status moves in the routing step
    that delivers the events (docs/channels/contract.md, "Receipts")."""
    return [
        Receipt(
            connector_id=event.route.connector_id,
            dialog_key=event.dialog_key,
            status=event.kind,
            channel_message_ids=event.channel_message_ids,
            watermark=event.watermark,
            reason=event.reason,
        )
        for event in events
        if event.kind in RECEIPT_KINDS
    ]


def no_reply_terms(connector_id: str, dialog_key: str) -> ReplyConditions:
    return ReplyConditions()


class PortalRouter:
    def __init__(
        self,
        portal: Callable[[], PortalConfig],
        store: ThreadedStore[OutboxStore],
        rules: PortalRules,
        clock: Clock,
        counters: Counters,
        notify: Notify,
        enqueue: Enqueue,
        watermarks: Watermarks | None = None,
        reply_terms: ReplyTerms = no_reply_terms,
    ) -> None:
        self._portal = portal
        self._store = store
        self._clock = clock
        self._counters = counters
        self._notify = notify
        self._enqueue = enqueue
        self._watermarks = watermarks or Watermarks.none()
        self._reply_terms = reply_terms
        self.dispatcher = Dispatcher(
            portal().id,
            Board(),
            rules,
            line_name=self.line_name,
            window_of=lambda connector_id, key: reply_terms(connector_id, key).window,
        )
        self.contacts = ContactBook(portal, store, clock, counters)
        self.workflow = Workflow(self.dispatcher)
        self.quick_answers = QuickAnswers(self.portal_id, store, clock, self._known_line)
        self.statistics = Statistics(self.portal_id, store, self._known_line)
        self._live_stats = LiveStats(self.portal_id, counters)
        self._lock = asyncio.Lock()
        # Flags, not asyncio.Events: an Event carries a deque of waiters (~0.8 KB), and
        # thousands of idle portals would each hold two for nothing.
        self._inbox_news = False
        self._echoes_deferred = False
        """A ``sent_elsewhere`` waits in the inbox for a reply being sent: route again when
        a reply settles."""
        self._timers_changed: asyncio.Event | None = None
        """Created with the timer loop, which is the only one to wait on it."""
        self._dialog_due: dict[str, float] = {}
        self._line_due: dict[str, float] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._order = itertools.count()
        self._running = False
        self._inbox_task: asyncio.Task[None] | None = None
        self._timer_task: asyncio.Task[None] | None = None

    @property
    def portal_id(self) -> str:
        return self.dispatcher.portal_id

    # -- life --------------------------------------------------------------------------------

    async def start(self, startup: PortalStartup | None = None) -> None:
        """Load the board, fire what fell due while stopped, then route the inbox (when
        ``startup``, read for many portals at once, says it holds anything: an idle portal
        starts without a task or a store call of its own)."""
        self._running = True
        async with self._lock:
            await self._load(startup)
            now = self._clock.now()
            self.dispatcher.fire(list(self._dialog_due), [], now)
            self.dispatcher.route_all(now)
            await self._commit()
        if startup is None or startup.inbox:
            self.wake()

    async def stop(self) -> None:
        self._running = False
        tasks = [t for t in (self._inbox_task, self._timer_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inbox_task = self._timer_task = None

    @property
    def quiet(self) -> bool:
        """Nothing open, blocked or at work in memory and no step under way: what a host
        asks before reading the store to put the portal to sleep (``MailboxHost``)."""
        board = self.dispatcher.board
        return not (
            board.dialogs
            or board.blocked
            or self._lock.locked()
            or any(op.status != "offline" or op.working for op in board.operators.values())
        )

    def _ensure_inbox_loop(self) -> None:
        """The inbox loop starts with the first message: an idle portal costs no task."""
        if self._running and (self._inbox_task is None or self._inbox_task.done()):
            self._inbox_task = asyncio.create_task(
                self._boundary(self._route_inbox, "routing the inbox")
            )

    def _ensure_timer_loop(self) -> None:
        """The timer loop starts with the first timer."""
        if self._running and (self._timer_task is None or self._timer_task.done()):
            if self._timers_changed is None:
                self._timers_changed = asyncio.Event()
            self._timer_task = asyncio.create_task(
                self._boundary(self._run_timers, "running timers")
            )

    async def _load(self, startup: PortalStartup | None = None) -> None:
        store = self._store.store
        if startup is None:
            dialogs, operators, undelivered = await self._store.call(
                store.load_board, self.portal_id
            )
            blocked = await self._store.call(store.blocked, self.portal_id)
        else:
            dialogs, operators = startup.dialogs, startup.operators
            undelivered = set(startup.undelivered_offers)
            blocked = startup.blocked
        board = Board(blocked={block.identity: block for block in blocked})
        for operator in operators:
            board.put_operator(operator)
        for dialog in dialogs:
            board.put_dialog(dialog)
        self.dispatcher.board = board
        self._dialog_due.clear()
        self._line_due.clear()
        self._heap.clear()
        # An offer acknowledged by the portal just before a crash, its timer not yet started.
        reached = [
            d.offer_event_id
            for d in dialogs
            if d.offer_event_id is not None
            and d.offer_seen_at is None
            and d.offer_event_id not in undelivered
        ]
        self.dispatcher.offers_reached(reached, self._clock.now())
        for dialog in board.dialogs.values():
            self._schedule(dialog)

    async def _boundary(self, loop: Callable[[], Awaitable[None]], what: str) -> None:
        """Keep a loop alive through a failed step: everything it works on is stored, so
        trying again after a second is safe; without this the portal would stall silently.
        A loop that returns is done (it is started again when there is work)."""
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop boundary: log, count, carry on
                log.exception("portal %s: %s failed", self.portal_id, what)
                self._counters.inc("openlines_rejected_total", reason="routing_error")
                await asyncio.sleep(1.0)

    # -- committing --------------------------------------------------------------------------

    async def _commit(
        self,
        replies: Sequence[StoredReply] = (),
        settled: Sequence[str] = (),
        durable: bool = False,
    ) -> None:
        plan = self.dispatcher.take_plan()
        if not plan and not replies and not settled:
            return
        now = self._clock.now()
        line_texts = [self._line_text(plan, notice, now) for notice in plan.notices]
        all_replies = [*replies, *line_texts]
        store = self._store.store
        try:
            hashes = await self._store.call(
                store.commit_plan, self.portal_id, plan, all_replies, settled, now, durable
            )
        except Exception:
            await self._load()  # the board ran ahead of the disk: take the disk's word
            raise
        self._after_commit(plan, hashes, all_replies)

    def _line_text(self, plan: Plan, notice: Notice, now: float) -> StoredReply:
        """A text of the line or its bot, buttons and all, stored to be sent like a reply."""
        dialog = (
            plan.dialogs.get(notice.dialog_id) or self.dispatcher.board.dialogs[notice.dialog_id]
        )
        request = ReplyRequest(content=OutboundText(text=notice.text), keyboard=notice.keyboard)
        target = target_of(dialog, self.portal_id)
        return stored_reply(notice.reply_id, target, request, notice.origin, now)

    def _after_commit(self, plan: Plan, hashes: list[int], replies: Sequence[StoredReply]) -> None:
        if hashes:
            self._notify(hashes)
        kept = sum(1 for entry in plan.entries if not entry.deliver)
        if plan.opened:
            self._counters.inc("openlines_dialogs_opened_total", plan.opened, portal=self.portal_id)
        if kept:
            self._counters.inc("openlines_blocked_messages_total", kept, portal=self.portal_id)
        if plan.decisions:
            self._counters.inc(
                "openlines_routing_decisions_total", len(plan.decisions), portal=self.portal_id
            )
        for dialog in plan.dialogs.values():
            self._schedule(dialog)
        for line_id, at in self.dispatcher.wakeups.items():
            if self._line_due.get(line_id) != at:
                self._line_due[line_id] = at
                self._push(at, "line", line_id)
        for reply in replies:
            self._enqueue(reply)
        self._live_stats.record(plan.entries)  # last: docs/statistics.md, "Metrics"

    # -- timers ------------------------------------------------------------------------------

    def _schedule(self, dialog: DialogState) -> None:
        due = self.dispatcher.deadline(dialog) if dialog.state != "closed" else None
        if due is None:
            self._dialog_due.pop(dialog.dialog_id, None)
        elif self._dialog_due.get(dialog.dialog_id) != due:
            self._dialog_due[dialog.dialog_id] = due
            self._push(due, "dialog", dialog.dialog_id)

    def _push(self, at: float, kind: str, key: str) -> None:
        heapq.heappush(self._heap, (at, next(self._order), kind, key))
        self._ensure_timer_loop()
        if len(self._heap) > 2 * (len(self._dialog_due) + len(self._line_due)) + 1024:
            self._compact()
        if self._timers_changed is not None:
            self._timers_changed.set()

    def _compact(self) -> None:
        """Drop superseded entries: a deadline moves every time its dialog changes."""
        self._heap = [
            (at, next(self._order), "dialog", key) for key, at in self._dialog_due.items()
        ] + [(at, next(self._order), "line", key) for key, at in self._line_due.items()]
        heapq.heapify(self._heap)

    async def _run_timers(self) -> None:
        """Fire timers as they fall due; end when none is left (``_push`` starts it again)."""
        while True:
            assert self._timers_changed is not None
            self._timers_changed.clear()
            if not self._heap:
                return
            wait_s = self._heap[0][0] - self._clock.now()
            if wait_s > 0:
                await self._sleep_or_change(wait_s)
                continue
            await self._fire_due()

    async def _sleep_or_change(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        assert self._timers_changed is not None
        changed = asyncio.ensure_future(self._timers_changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    async def _fire_due(self) -> None:
        now = self._clock.now()
        dialogs: list[str] = []
        lines: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, _, kind, key = heapq.heappop(self._heap)
            current = self._dialog_due if kind == "dialog" else self._line_due
            if current.get(key) != at:
                continue  # superseded
            del current[key]
            (dialogs if kind == "dialog" else lines).append(key)
        if dialogs or lines:
            async with self._lock:
                self.dispatcher.fire(dialogs, lines, self._clock.now())
                await self._commit()

    # -- the inbox ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Messages were stored for this portal: route them."""
        self._inbox_news = True
        self._ensure_inbox_loop()

    async def _route_inbox(self) -> None:
        """Route while there is news, then end: ``wake`` starts it again. (No await lies
        between the last check and the end, so a wake cannot fall between them.)"""
        while self._inbox_news:
            self._inbox_news = False
            try:
                while True:
                    more, held_from = await self._route_some()
                    if held_from is not None:
                        # Rows another channel actor may still have older ones for: wait
                        # until every channel actor has handed over up to them.
                        await self._watermarks.settle(held_from)
                    elif not more:
                        break
            except Exception:
                self._inbox_news = True  # the rows are still there: the next round routes them
                raise

    async def _route_some(self) -> tuple[bool, float | None]:
        """Route what the inbox holds up to the watermarks; returns (more rows may be
        waiting, the received time of the oldest row held back, if any)."""
        store = self._store.store
        async with self._lock:
            rows = await self._store.call(store.inbox, self.portal_id, INBOX_BATCH)
            if not rows:
                return False, None
            release_before = self._watermarks.release_before()
            ready = [row for row in rows if row.received_at <= release_before]
            held = [row.received_at for row in rows if row.received_at > release_before]
            if ready:
                await self._arrive(ready)
        return len(rows) == INBOX_BATCH, min(held) if held else None

    async def _arrive(self, rows: list[InboxRow]) -> None:
        """Messages into their streams: in the order they were received, each dialog's in
        the channel's own order (a chat's webhooks may come over parallel connections)."""
        store = self._store.store
        events = await self._channel_events(rows)
        rows = await self._without_own_echoes(rows, events)
        ordered = sorted_into_slots(sorted(rows, key=lambda r: (r.received_at, r.rowid)))
        board = self.dispatcher.board
        unknown = [row for row in ordered if row.dialog_ref not in board.open_by_ref]
        customers = {f"{r.conversation.connector_id}/{r.conversation.customer_id}" for r in unknown}
        links = await self.contacts.link(ordered, self.dispatcher.rules)  # docs/crm.md
        # Keyed as dialogs key ownership and blocks: the contact, else the connector identity.
        identities = sorted({links[c].contact_id if c in links else c for c in customers})
        # The latest dialog of a conversation: what an edit refers to, what may reopen, or
        # what waits for its rating.
        voice = self.dispatcher.voice
        reopening = voice.rating_lines or any(
            r.reopen_within_s for r in self.dispatcher.rules.lines.values()
        )
        refs = sorted({r.dialog_ref for r in unknown if reopening or r.kind != "message.received"})
        owners, recent = await self._store.call(
            store.routing_context, self.portal_id, identities, refs
        )
        owners = dialog_owners(customers, links, owners)
        blocking = {
            identity: await self._blocking_dialog(board.blocked[identity])
            for identity in identities
            if identity in board.blocked
        }
        heard = await self._heard(ordered) if voice.listening else {}
        openers = {rowid for rowid, event in events.items() if event.opens_window}
        self.dispatcher.arrive(ordered, owners, recent, self._clock.now(), blocking, heard, openers)
        self.dispatcher.plan.receipts.extend(receipts_of(events.values()))
        await self._commit()

    async def _heard(self, rows: Sequence[InboxRow]) -> dict[int, Heard]:
        """What each customer message says, for lines that read them (their own messages
        and bot, docs/line-messages.md): the stored messages, read by inbox row."""
        wanted = [row.rowid for row in rows if row.kind == "message.received"]
        payloads = await self._store.call(self._store.store.inbox_payloads, self.portal_id, wanted)
        return {
            rowid: heard_of(InboundMessage.model_validate_json(payload))
            for rowid, payload in payloads.items()
        }

    async def _without_own_echoes(
        self, rows: list[InboxRow], events: dict[int, ChannelEvent]
    ) -> list[InboxRow]:
        """The rows less ``sent_elsewhere`` events that name a message the engine sent itself
        (a provider that does not say who sent an echo: Instagram), which are dropped
        unseen; and less those of a dialog whose reply is being sent, whose message ids are
        not known yet: they stay in the inbox until it settles (docs/channels/contract.md,
        "Events that are not messages")."""
        echoes = {r: e for r, e in events.items() if e.kind == "sent_elsewhere"}
        if not echoes:
            return rows
        store = self._store.store
        dropped: set[int] = set()
        for rowid, echo in echoes.items():
            connector_id = echo.route.connector_id
            ids = echo.channel_message_ids
            ours = await self._store.call(store.own_message_ids, self.portal_id, connector_id, ids)
            if ours:
                dropped.add(rowid)
        board = self.dispatcher.board
        pending = {
            r.rowid: board.open_by_ref[r.dialog_ref]
            for r in rows
            if r.rowid in echoes and r.rowid not in dropped and r.dialog_ref in board.open_by_ref
        }
        sending = await self._store.call(
            store.sending_dialogs, self.portal_id, sorted(set(pending.values()))
        )
        deferred = {rowid for rowid, dialog_id in pending.items() if dialog_id in sending}
        self._echoes_deferred = self._echoes_deferred or bool(deferred)
        self.dispatcher.plan.dropped.extend(sorted(dropped))
        for rowid in dropped:
            events.pop(rowid)
        return [r for r in rows if r.rowid not in dropped and r.rowid not in deferred]

    async def _channel_events(self, rows: Sequence[InboxRow]) -> dict[int, ChannelEvent]:
        """The channel events among the rows, by inbox row: what they report of our messages
        and whether they open the messaging window."""
        wanted = [row.rowid for row in rows if row.kind == CHANNEL_EVENT]
        if not wanted:
            return {}
        payloads = await self._store.call(self._store.store.inbox_payloads, self.portal_id, wanted)
        return {
            rowid: ChannelEvent.model_validate_json(payload) for rowid, payload in payloads.items()
        }

    async def _blocking_dialog(self, block: Block) -> DialogState:
        dialog = await self._store.call(self._store.store.dialog, self.portal_id, block.dialog_id)
        if dialog is None:  # the block and its dialog commit together
            raise NotFoundError(f"block of {block.identity!r} names a lost dialog")
        return dialog

    # -- operators and their actions -----------------------------------------------------------

    async def set_operator(
        self, operator_id: str, status: OperatorStatus | None, working: bool | None
    ) -> OperatorState:
        async with self._lock:
            current = self.dispatcher.board.operator(operator_id)
            operator = self.dispatcher.set_operator(
                operator_id,
                current.status if status is None else status,
                current.working if working is None else working,
                self._clock.now(),
            )
            await self._commit()
        return operator

    async def _step(self, dialog_id: str | None, act: Callable[[float], T]) -> T:
        """One operator action as a routing step: on an open dialog of this portal (409
        closed, 404 unknown), decided by the pure dispatcher or workflow, which refuse
        before they change anything, and committed in one transaction with its events."""
        async with self._lock:
            if dialog_id is not None:
                await self._must_be_open(dialog_id)
            result = act(self._clock.now())
            await self._commit()
        return result

    async def accept(self, dialog_id: str, operator_id: str) -> DialogState:
        return await self._step(
            dialog_id, lambda now: self.dispatcher.accept(dialog_id, operator_id, now)
        )

    async def skip(self, dialog_id: str, operator_id: str) -> DialogState:
        return await self._step(
            dialog_id, lambda now: self.dispatcher.skip(dialog_id, operator_id, now)
        )

    async def finish(self, dialog_id: str, by: str | None) -> DialogState:
        return await self._step(dialog_id, lambda now: self.dispatcher.finish(dialog_id, now, by))

    async def decline(
        self, dialog_id: str, by: str | None, spam: bool, customer_text: str | None, block: bool
    ) -> DialogState:
        def act(now: float) -> DialogState:
            return self.workflow.decline(
                dialog_id, now, by=by, spam=spam, customer_text=customer_text, block=block
            )

        return await self._step(dialog_id, act)

    async def pin(self, dialog_id: str, by: str | None) -> DialogState:
        return await self._step(dialog_id, lambda now: self.workflow.pin(dialog_id, now, by))

    async def unpin(self, dialog_id: str, by: str | None) -> DialogState:
        return await self._step(dialog_id, lambda now: self.workflow.unpin(dialog_id, now, by))

    async def transfer(
        self,
        dialog_id: str,
        by: str | None,
        to_operator_id: str | None,
        to_line_id: str | None,
        responsible_id: str | None,
    ) -> DialogState:
        """To an operator on the dialog's line, or to another line (exactly one of them)."""
        owners = None
        if responsible_id is not None:
            dialog = await self.dialog(dialog_id)
            owners = await self._store.call(
                self._store.store.customer_owners, self.portal_id, dialog.identity
            )
        workflow = self.workflow

        def act(now: float) -> DialogState:
            if to_operator_id is not None:
                return workflow.transfer_to_operator(
                    dialog_id,
                    to_operator_id,
                    now,
                    by=by,
                    responsible_id=responsible_id,
                    owners=owners,
                )
            assert to_line_id is not None
            return workflow.transfer_to_line(
                dialog_id, to_line_id, now, by=by, responsible_id=responsible_id, owners=owners
            )

        return await self._step(dialog_id, act)

    async def invite(self, dialog_id: str, operator_id: str, by: str | None) -> DialogState:
        return await self._step(
            dialog_id, lambda now: self.workflow.invite(dialog_id, operator_id, now, by)
        )

    async def join(self, dialog_id: str, operator_id: str) -> DialogState:
        return await self._step(
            dialog_id, lambda now: self.workflow.join_silently(dialog_id, operator_id, now)
        )

    async def leave(self, dialog_id: str, operator_id: str) -> DialogState:
        return await self._step(
            dialog_id, lambda now: self.workflow.leave(dialog_id, operator_id, now)
        )

    async def unblock(self, connector_id: str, customer_id: str, by: str | None) -> Block:
        identity = await self.contacts.owner_key(connector_id, customer_id)
        async with self._lock:
            block = self.dispatcher.board.blocked.get(identity)
            if block is None:
                raise NotFoundError(f"customer {identity!r} is not blocked")
            blocking = await self._blocking_dialog(block)
            self.workflow.unblock(identity, blocking, self._clock.now(), by)
            await self._commit()
        return block

    async def set_profile(
        self, operator_id: str, display_name: str | None, avatar_url: str | None
    ) -> OperatorState:
        return await self._step(
            None, lambda now: self.workflow.set_profile(operator_id, display_name, avatar_url)
        )

    async def _must_be_open(self, dialog_id: str) -> DialogState:
        """The open dialog; 409 for a closed one, 404 for one this portal never had."""
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        if dialog is not None:
            return dialog
        stored = await self.dialog(dialog_id)
        raise ConflictError(
            f"dialog {dialog_id!r} is closed ({stored.closed_reason}): the customer writes first",
            "dialog_closed",
        )

    async def dialog(self, dialog_id: str) -> DialogState:
        """Any dialog of this portal, open or closed; ``NotFoundError`` otherwise."""
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        if dialog is None:
            dialog = await self._store.call(self._store.store.dialog, self.portal_id, dialog_id)
        if dialog is None:
            raise NotFoundError(
                f"no dialog {dialog_id!r} for portal {self.portal_id!r}: the customer writes first"
            )
        return dialog

    async def reply(self, dialog_id: str, body: ReplyBody) -> str:
        """Store an operator's reply durably (the caller answers 202 on it) and queue it:
        refused for a closed dialog, a silent supervisor, outside the channel's window; a
        quick answer is filled in; the persona's sender shown beside it, or its name put
        before the text where the channel shows no sender."""
        async with self._lock:
            dialog = await self._must_be_open(dialog_id)
            conditions = self._reply_terms(dialog.connector_id, dialog.dialog_key)
            last = None
            unkept = conditions.window is not None and dialog.window_closes_at is None
            if unkept or body.quick_answer_id is not None:
                last = await self._store.call(
                    self._store.store.last_customer_message, self.portal_id, dialog_id
                )
            conditions = replace(conditions, last_customer_at=last[0] if last else None)
            content = body.content
            if content is None:
                content = await self._quick_answer_content(dialog, body, last[1] if last else None)
            now = self._clock.now()
            shown = self.workflow.reply(dialog_id, body.operator_id, content, now, conditions)
            request = ReplyRequest(
                content=shown.content,
                sender=shown.sender,
                outside_window_form=shown.outside_window_form,
                reply_to_channel_message_id=body.reply_to_channel_message_id,
                client_id=body.client_id,
                operator_id=body.operator_id,
            )
            reply = stored_reply(
                new_id("rpl"), target_of(dialog, self.portal_id), request, "operator", now
            )
            await self._commit(replies=[reply], durable=True)
        return reply.reply_id

    async def _quick_answer_content(
        self, dialog: DialogState, body: ReplyBody, last_message: bytes | None
    ) -> OutboundContent:
        """The quick answer a reply names, with its variables filled in."""
        assert body.quick_answer_id is not None
        answer = await self.quick_answers.get(body.quick_answer_id)
        if answer.line_id != dialog.line_id:
            raise ConflictError(
                f"quick answer {answer.answer_id!r} is line {answer.line_id!r}'s; dialog "
                f"{dialog.dialog_id!r} is on line {dialog.line_id!r}",
                "other_line",
            )
        customer = orjson.loads(last_message)["customer"] if last_message else {}
        operator_name = self.workflow.persona_name(dialog, body.operator_id)
        text = quick_answer_text(
            answer.text, customer.get("name"), operator_name, self.line_name(dialog.line_id)
        )
        if not text.strip():
            raise ValidationFailedError(f"quick answer {answer.answer_id!r} is empty filled in")
        return OutboundText(text=text)

    async def settle_reply(self, reply: StoredReply, outcome: ReplyOutcome) -> None:
        """A reply's outcome joins its dialog's stream; the stored reply goes with it."""
        async with self._lock:
            dialog = await self._reply_dialog(reply)
            now = self._clock.now()
            self.dispatcher.note(dialog, outcome, now, reply.request_json)
            if isinstance(outcome, ReplySent):
                self.dispatcher.plan.sent_parts.extend(sent_parts(reply, outcome, now))
            await self._commit(settled=[reply.reply_id])
        if self._echoes_deferred:  # an echo waited for this reply's message ids
            self._echoes_deferred = False
            self.wake()

    async def _reply_dialog(self, reply: StoredReply) -> DialogState:
        """The dialog a reply belongs to, on the board or stored (closed meanwhile)."""
        return self.dispatcher.board.with_dialog(reply.dialog_id) or await self.dialog(
            reply.dialog_id
        )

    async def reply_queued(self, reply: StoredReply, event: ReplyQueued) -> None:
        """A reply waits for a kept rate limit: ``reply.queued`` joins its dialog's stream
        (the reply stays stored; its outcome follows)."""
        async with self._lock:
            dialog = await self._reply_dialog(reply)
            self.dispatcher.note(dialog, event, self._clock.now())
            await self._commit()

    async def set_responsible(
        self, connector_id: str, customer_id: str, operator_id: str | None
    ) -> None:
        """The responsible of the customer's contact (made if they never wrote)."""
        contact_id = await self.contacts.contact_of(connector_id, customer_id)
        await self.set_contact_responsible(contact_id, operator_id)

    async def set_contact_responsible(self, contact_id: str, operator_id: str | None) -> str:
        """The contact's responsible, for its open dialogs too; returns the live contact id
        (a merged contact's survivor)."""
        async with self._lock:
            contact_id = await self.contacts.resolve(contact_id)
            owners = await self._store.call(
                self._store.store.customer_owners, self.portal_id, contact_id
            )
            self.dispatcher.set_owner(contact_id, operator_id, owners, self._clock.now())
            await self._commit()
        return contact_id

    async def merge_contacts(self, survivor_id: str, contact_id: str) -> Contact:
        """``contact_id`` joins ``survivor_id`` (docs/crm.md); its open dialogs follow."""
        async with self._lock:
            survivor, merged_id = await self.contacts.merge(survivor_id, contact_id)
            self.dispatcher.contact_merged(
                merged_id, survivor.id, survivor.responsible_id, self._clock.now()
            )
            await self._commit()
        return survivor

    async def offers_settled(self, event_ids: list[str]) -> None:
        async with self._lock:
            self.dispatcher.offers_reached(event_ids, self._clock.now())
            await self._commit()

    async def rules_changed(self, rules: PortalRules) -> None:
        async with self._lock:
            self.dispatcher.rules_changed(rules, self._clock.now())
            for dialog in self.dispatcher.board.dialogs.values():
                self._schedule(dialog)
            await self._commit()

    # -- reading -------------------------------------------------------------------------------

    async def explain(self, dialog_id: str, limit: int) -> dict[str, object]:
        """The dialog's recorded decisions, newest first, and for a waiting dialog why no
        operator takes it right now (computed from the same pure function)."""
        dialog = await self.dialog(dialog_id)
        decisions = await self._store.call(
            self._store.store.decisions, self.portal_id, dialog_id, limit
        )
        now_view: dict[str, object] | None = None
        rules = self.dispatcher.rules.line(dialog.line_id)
        if dialog.state == "waiting" and rules is not None:
            choice = choose(dialog, rules, self.dispatcher.board, self._clock.now())
            now_view = {
                "at": self._clock.now(),
                "action": choice.action,
                "operator_ids": list(choice.operator_ids),
                "reason": choice.reason,
                "skipped": choice.skipped,
            }
        return {
            "dialog": dialog.view().model_dump(mode="json"),
            "decisions": decisions,
            "now": now_view,
        }

    def operators(self, line_id: str) -> list[dict[str, object]]:
        """The line's operators in queue order with status and load."""
        rules = self.dispatcher.rules.line(line_id)
        if rules is None:
            raise NotFoundError(f"line {line_id!r} has no routing rules")
        board = self.dispatcher.board
        counted = rules.capacity.counted_states
        return [
            {
                "operator_id": operator_id,
                "status": board.operator(operator_id).status,
                "working": board.operator(operator_id).working,
                "load_on_line": board.load(operator_id, counted, line_id),
                "load_total": board.load(operator_id, counted, None),
                "max_dialogs": rules.capacity.max_dialogs_per_operator,
            }
            for operator_id in rules.queue_order
        ]

    def line_name(self, line_id: str) -> str:
        """The line's human name from the portal's config, else its id."""
        for line in self._portal().lines:
            if line.id == line_id and line.name:
                return line.name
        return line_id

    def _known_line(self, line_id: str) -> None:
        if line_id not in self._portal().line_ids() and self.dispatcher.rules.line(line_id) is None:
            raise NotFoundError(f"portal {self.portal_id!r} has no line {line_id!r}")

    async def history(
        self, dialog_id: str, limit: int, after_event_id: str | None
    ) -> tuple[DialogState, list[HistoryEvent]]:
        """The dialog now, and ``limit`` of its events in stream order after an event id."""
        dialog = await self.dialog(dialog_id)
        events = await self._store.call(
            self._store.store.history, self.portal_id, dialog_id, limit, after_event_id
        )
        return dialog, events

    def operator_dialogs(self, operator_id: str) -> list[tuple[str, DialogState]]:
        """The open dialogs the operator holds, is offered or takes part in, with how."""
        return list(self.workflow.dialogs_of(operator_id))

    def line_queue(self, line_id: str) -> list[DialogState]:
        """The line's waiting dialogs in the order it serves them."""
        self._known_line(line_id)
        return self.workflow.queue_of(line_id)


def sent_parts(reply: StoredReply, sent: ReplySent, now: float) -> list[SentPart]:
    """The messages of a sent reply, by the ids the channel gave them."""
    target = DialogTarget.model_validate_json(reply.target_json)
    return [
        SentPart(
            reply_id=reply.reply_id,
            part=index,
            connector_id=target.route.connector_id,
            dialog_key=target.dialog_key,
            channel_message_id=message_id,
            sent_at=now,
        )
        for index, message_id in enumerate(sent.channel_message_ids)
    ]
