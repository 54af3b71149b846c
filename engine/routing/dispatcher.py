"""A portal's dialog lifecycle: arrivals, offers, accepts, timers, operators coming and going.

The dispatcher owns a portal's ``Board`` and its rules. Every input (customer messages
from the inbox, an operator's status, accept, skip, finish, an offer reaching the portal,
the clock passing a deadline, new rules) changes the board and writes down in a ``Plan``
what must be committed together: the changed records and the events they produce, in the
dialogs' stream order. It does no I/O and reads time only from its arguments, so the same
inputs always give the same plan (tests, ``openlines rules simulate``); the async owner
(``engine.routing.portal_router``) persists plans and runs the timers.

Lifecycle: ``waiting`` → ``offered`` (to one operator or several) → ``assigned`` →
``answered`` → ``closed``; an offer that expires, is skipped or withdrawn, and an operator
who becomes unavailable or does not answer, send the dialog back to ``waiting`` (never a
pinned one). A customer writing soon enough after the close reopens it; a blocked one opens
nothing. The operators' own actions (decline, pin, transfer, participants, replies) are in
``engine.routing.workflow``, which records through the methods below. What the line says on
its own and its bot (``engine.routing.voice``) hook in where a dialog opens, a customer
writes, an operator replies or finishes, and a timer falls due; a dialog the bot answers or
that waits for consent is held out of the queue until released.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace

import orjson

from engine.errors import ConflictError, NotFoundError
from engine.events import (
    AssignedVia,
    ClosedReason,
    Decline,
    DialogAnswered,
    DialogAssigned,
    DialogClosed,
    DialogOffered,
    DialogOfferWithdrawn,
    DialogQueued,
    DialogReopened,
    DialogReturned,
    DialogTransferred,
    QueuedReason,
    ReturnedReason,
    WithdrawnReason,
    event_type,
)
from engine.ids import new_id
from engine.ingest import CHANNEL_EVENT
from engine.models import Frozen
from engine.routing.bot_turns import left
from engine.routing.choice import Choice, choose, line_availability, unavailable_reason
from engine.routing.plan import CustomerOwners, Decision, Notice, Plan, StreamEntry
from engine.routing.reply_text import fill
from engine.routing.rules import LineRules, PortalRules, UnavailableReason
from engine.routing.state import Block, Board, DialogState, OperatorState, OperatorStatus, moved
from engine.routing.voice import Heard, LineVoice
from engine.routing.windows import ReplyWindow, closes_at
from engine.store.records import InboxRow

IdMaker = Callable[[str], str]
WindowOf = Callable[[str, str], ReplyWindow | None]
"""A dialog's messaging window by its connector id and dialog key."""


def no_window(connector_id: str, dialog_key: str) -> ReplyWindow | None:
    return None


def address_fields(address: str) -> dict[str, str]:
    """A stored address (``Conversation.address``, JSON written by ``engine.ingest``)."""
    fields: dict[str, str] = orjson.loads(address)
    return fields


class Dispatcher:
    def __init__(
        self,
        portal_id: str,
        board: Board,
        rules: PortalRules,
        ids: IdMaker = new_id,
        line_name: Callable[[str], str] = str,
        window_of: WindowOf = no_window,
    ) -> None:
        self.portal_id = portal_id
        self.window_of = window_of
        """A dialog's messaging window by connector and dialog key (None: none), for
        ``window_closes_at``."""
        self.board = board
        self.rules = rules
        self.ids = ids
        """Makes the ids of dialogs, events, decisions and texts (deterministic in tests)."""
        self.line_name = line_name
        """A line's name for customers ({line_name}): the portal config's, else its id."""
        self.voice = LineVoice(self)
        self.plan = Plan()
        self._freed: set[str] = set()
        """Operators who let go of a dialog since the last routing: their lines may move."""
        self.wakeups: dict[str, float] = {}
        """Per line, when time alone may let a waiting dialog be served (the line opening,
        an operator's shift, the end of a wait for the responsible)."""

    def take_plan(self) -> Plan:
        """What changed since the last call, for the owner to commit."""
        plan, self.plan = self.plan, Plan()
        return plan

    # -- recording -------------------------------------------------------------------------

    def put(self, dialog: DialogState) -> DialogState:
        old = self.board.with_dialog(dialog.dialog_id)
        if old is not None and (old.state != dialog.state or old.holders != dialog.holders):
            # Let go of, or counted differently (answered may not count toward capacity).
            self._freed.update(old.holders)
        self.board.put_dialog(dialog)
        self.plan.dialogs[dialog.dialog_id] = dialog
        return dialog

    def put_operator(self, operator: OperatorState) -> None:
        self.board.put_operator(operator)
        self.plan.operators[operator.operator_id] = operator

    def emit(
        self,
        dialog: DialogState,
        data: Frozen,
        now: float,
        event_id: str = "",
        reply_json: bytes | None = None,
    ) -> None:
        self.plan.entries.append(
            StreamEntry(
                event_id or self.ids("evt"),
                event_type(data),
                dialog.dialog_id,
                dialog.ref,
                dialog.view_json(),
                now,
                data,
                reply_json=reply_json,
                contact_id=dialog.contact_id,
            )
        )

    def note(
        self, dialog: DialogState, data: Frozen, now: float, reply_json: bytes | None = None
    ) -> None:
        """An event about the dialog that changes nothing in it (a reply's outcome, with the
        reply as sent for the dialog's history)."""
        self.emit(dialog, data, now, reply_json=reply_json)

    def tell(self, dialog: DialogState, text: str | None, values: Mapping[str, object]) -> None:
        if text:
            self.plan.notices.append(Notice(self.ids("rpl"), dialog.dialog_id, fill(text, values)))

    def line(self, line_id: str) -> LineRules | None:
        return self.rules.line(line_id)

    # -- customers' messages ---------------------------------------------------------------

    def arrive(
        self,
        arrivals: Sequence[InboxRow],
        owners: Mapping[str, CustomerOwners],
        recent: Mapping[str, DialogState],
        now: float,
        blocking: Mapping[str, DialogState] | None = None,
        heard: Mapping[int, Heard] | None = None,
        window_openers: Collection[int] = (),
    ) -> None:
        """Messages from the inbox join their dialogs' streams; new conversations open
        dialogs, or reopen the last one within the line's ``reopen_within_s``.

        ``owners`` are the CRM records of customers without an open dialog, ``recent`` the
        last dialog of conversations an edit or deletion refers to, or that may reopen or
        wait for its rating; ``blocking`` the dialog that blocked each blocked identity among
        the arrivals: their messages go to its history only (docs/routing.md, "Decline");
        ``heard`` what each message says, by inbox row, on lines that read it (their own
        messages and bot, docs/line-messages.md); ``window_openers`` the inbox rows of channel
        events the provider counts as the customer writing (a Messenger reaction): they move
        the messaging window like a message (docs/channels/contract.md, "Messaging windows").
        """
        lines: set[str] = set()
        opened: list[str] = []
        latest = dict(recent)  # a rated dialog waits for no second rating in this batch
        for arrival in arrivals:
            dialog_id = self.board.open_by_ref.get(arrival.dialog_ref)
            conversation = arrival.conversation
            identity = f"{conversation.connector_id}/{conversation.customer_id}"
            owner = owners.get(identity)
            # Blocks are keyed as ownership is: the contact, else the connector identity.
            blocked_as = owner.identity if owner is not None else identity
            block = self.board.blocked.get(blocked_as) if dialog_id is None else None
            if block is not None:
                self._kept_from_blocked(arrival, block, (blocking or {})[blocked_as])
                continue
            previous = latest.get(arrival.dialog_ref)
            if arrival.kind == CHANNEL_EVENT and dialog_id is None and previous is None:
                self.plan.dropped.append(arrival.rowid)  # a receipt or block opens no dialog
                continue
            said = (heard or {}).get(arrival.rowid) if arrival.kind == "message.received" else None
            rating = None
            if dialog_id is None and previous is not None and said is not None:
                rating = self.voice.rating_of(previous, said, now)
            if dialog_id is not None:
                dialog = self.board.dialogs[dialog_id]
            elif (arrival.kind != "message.received" or rating) and previous is not None:
                dialog = previous  # an edit of a closed dialog's message, or its rating
            elif previous is not None and self._reopens(previous, arrival.received_at):
                dialog = self._reopen(previous, owner, now, said)
                opened.append(dialog.dialog_id)
            else:
                dialog = self._open(arrival, owner, now, said)
                opened.append(dialog.dialog_id)
            opens = arrival.kind == "message.received" or arrival.rowid in window_openers
            if opens and dialog.state != "closed":
                dialog = self._window_opened(dialog, arrival.received_at)
            if arrival.kind == "message.received" and dialog.state != "closed":
                dialog = self._addressed(dialog, arrival.conversation.address)
            self.plan.entries.append(
                StreamEntry(
                    arrival.event_id,
                    arrival.kind,
                    dialog.dialog_id,
                    arrival.dialog_ref,
                    dialog.view_json(),
                    arrival.received_at,
                    inbox_rowid=arrival.rowid,
                    contact_id=dialog.contact_id,
                )
            )
            lines.add(dialog.line_id)
            if rating is not None and previous is not None:
                latest[arrival.dialog_ref] = self.voice.rate(previous, rating, now)
            elif said is not None:
                self.voice.heard(dialog.dialog_id, said, now, fresh=dialog_id is None)
        self.route(lines, now)
        self._tell_joined(opened)

    def _window_opened(self, dialog: DialogState, customer_at: float) -> DialogState:
        """The customer wrote: a channel with a messaging window takes replies until
        ``window_closes_at`` (docs/channels/contract.md, "Messaging windows")."""
        closes_at = self._window_from(dialog.connector_id, dialog.dialog_key, customer_at)
        if closes_at == dialog.window_closes_at:
            return dialog
        return self.put(moved(dialog, window_closes_at=closes_at))

    def _addressed(self, dialog: DialogState, address: str) -> DialogState:
        """The customer's new message says how to answer them now (the comment to reply to):
        kept with the dialog (docs/channels/contract.md, "Addressing"). A message without
        one (a channel that needs none) leaves what the dialog had."""
        if not address:
            return dialog
        fields = address_fields(address)
        if fields == dialog.address:
            return dialog
        return self.put(moved(dialog, address=fields))

    def _window_from(self, connector_id: str, dialog_key: str, customer_at: float) -> float | None:
        return closes_at(self.window_of(connector_id, dialog_key), customer_at)

    def _kept_from_blocked(self, arrival: InboxRow, block: Block, blocking: DialogState) -> None:
        """A blocked customer's message: into the blocking dialog's history, not delivered."""
        self.plan.entries.append(
            StreamEntry(
                arrival.event_id,
                arrival.kind,
                blocking.dialog_id,
                arrival.dialog_ref,
                blocking.view_json(),
                arrival.received_at,
                inbox_rowid=arrival.rowid,
                deliver=False,
                contact_id=blocking.contact_id,
            )
        )
        if arrival.kind == "message.received":
            counted = replace(block, messages=block.messages + 1)
            self.board.blocked[block.identity] = counted
            self.plan.blocks[block.identity] = counted

    def _tell_joined(self, dialog_ids: list[str]) -> None:
        """New dialogs that still wait after routing are told their place, if the line says."""
        for dialog_id in dialog_ids:
            dialog = self.board.with_dialog(dialog_id)
            rules = self.line(dialog.line_id) if dialog is not None else None
            if dialog is None or rules is None or dialog.state != "waiting":
                continue
            if rules.queue_position.on_join and dialog.told_position is not None:
                self._tell_position(dialog, rules, dialog.told_position)

    def _open(
        self, arrival: InboxRow, owners: CustomerOwners | None, now: float, said: Heard | None
    ) -> DialogState:
        conversation = arrival.conversation
        dialog = DialogState(
            dialog_id=self.ids("dlg"),
            line_id=conversation.line_id,
            connector_id=conversation.connector_id,
            channel=conversation.channel,
            dialog_key=conversation.dialog_key,
            customer_id=conversation.customer_id,
            opened_at=now,
            waiting_since=now,
            queued_at=now,
            responsible_id=owners.responsible_id if owners else None,
            last_operator_id=owners.last_operator_id if owners else None,
            contact_id=owners.contact_id if owners else None,
            lead_id=owners.lead_id if owners else None,
            window_closes_at=self._window_from(
                conversation.connector_id, conversation.dialog_key, arrival.received_at
            ),
            address=address_fields(conversation.address) if conversation.address else {},
        )
        self.plan.opened += 1
        self.plan.lines_seen.add((dialog.identity, dialog.line_id))
        dialog = self.voice.opening(dialog, owners, said, now, greet=True)
        if dialog.held is not None:
            return self.voice.hold(dialog, now)
        return self.join_queue(dialog, "new", now)

    def _reopens(self, previous: DialogState, written_at: float) -> bool:
        """The customer wrote within the reopen time of the line their dialog closed on; a
        declined dialog never reopens."""
        rules = self.line(previous.line_id)
        within = rules.reopen_within_s if rules is not None else None
        return (
            within is not None
            and previous.state == "closed"
            and previous.closed_reason != "declined"
            and previous.closed_at is not None
            and written_at - previous.closed_at <= within
        )

    def _reopen(
        self,
        previous: DialogState,
        owners: CustomerOwners | None,
        now: float,
        said: Heard | None = None,
    ) -> DialogState:
        reopened = moved(
            previous,
            held=None,
            state="waiting",
            operator_id=None,
            offered_to=(),
            offer_event_id=None,
            offer_seen_at=None,
            tried=(),
            waiting_since=now,
            queued_at=now,
            assigned_at=None,
            unavailable_since=None,
            unavailable_reason=None,
            notified_no_operator=False,
            responsible_id=owners.responsible_id if owners else None,
            last_operator_id=owners.last_operator_id if owners else None,
            closed_reason=None,
            closed_at=None,
            pinned=False,
            participants=(),
        )
        assert previous.closed_at is not None and previous.closed_reason is not None
        data = DialogReopened(
            closed_at=previous.closed_at,
            closed_reason=previous.closed_reason,  # type: ignore[arg-type]
        )
        self.emit(self.put(reopened), data, now)
        reopened = self.voice.opening(reopened, owners, said, now, greet=False)
        if reopened.held is not None:
            return self.voice.hold(reopened, now)
        return self.join_queue(reopened, "reopened", now)

    def join_queue(self, dialog: DialogState, reason: QueuedReason, now: float) -> DialogState:
        """A dialog that opens (new or reopened) joins its line's queue: outside hours the
        line's ``outside_hours`` apply; when nobody waits before it, it is decided at once,
        so its first message already shows the outcome. Otherwise the routing after the
        step serves the queue in its order."""
        position = self.join_position(dialog.line_id)
        dialog = self.put(moved(dialog, told_position=position))
        rules = self.line(dialog.line_id)
        closed = rules is not None and not rules.schedule.is_open(now)
        opens_at = rules.schedule.next_opening(now) if rules is not None and closed else None
        self.emit(dialog, DialogQueued(reason=reason, position=position, opens_at=opens_at), now)
        if rules is not None and closed:
            dialog = self._outside_hours(dialog, rules, now)
        elif rules is not None and self.board.waiting_count(dialog.line_id) == 1:
            choice = choose(dialog, rules, self.board, now)
            if choice.action != "wait":
                self._apply(dialog, choice, rules, now)
                dialog = self.board.dialogs[dialog.dialog_id]
        return dialog

    def join_position(self, line_id: str) -> int:
        """The place a dialog joining the line's queue now takes (1: next)."""
        rules = self.line(line_id)
        if rules is not None and rules.queue.order == "newest_first":
            return 1
        return self.board.waiting_count(line_id) + 1

    def tell_outside_hours(self, dialog: DialogState, rules: LineRules, now: float) -> None:
        """The line's outside-hours text, with when it opens."""
        opens_at = rules.schedule.next_opening(now)
        described = rules.schedule.describe_opening(now) if opens_at is not None else None
        self.tell(
            dialog, rules.outside_hours.text, {"opens_at": described or "", "line": rules.line}
        )

    def _outside_hours(self, dialog: DialogState, rules: LineRules, now: float) -> DialogState:
        self.tell_outside_hours(dialog, rules, now)
        target = rules.outside_hours.transfer_to_line
        if rules.outside_hours.action != "transfer" or target is None:
            return dialog
        position = self.join_position(target)
        moved_dialog = self.put(moved(dialog, line_id=target, told_position=position))
        self.emit(
            moved_dialog,
            DialogTransferred(from_line=rules.line, to_line=target, reason="outside_hours"),
            now,
        )
        self.emit(moved_dialog, DialogQueued(reason="transferred", position=position), now)
        return moved_dialog

    # -- routing ----------------------------------------------------------------------------

    def route(self, lines: Iterable[str], now: float) -> None:
        """Serve the waiting dialogs of these lines, and of every line whose operators let
        go of a dialog meanwhile (capacity freed on one line can serve another); higher
        priority lines first."""
        wanted = set(lines)
        while self._freed:
            wanted.update(self.rules.lines_of_operator.get(self._freed.pop(), ()))
        ordered = sorted(
            {line for line in wanted if self.line(line) is not None},
            key=lambda line: (-self.rules_of(line).priority, line),
        )
        for line_id in ordered:
            self._route_line(self.rules_of(line_id), now)

    def route_all(self, now: float) -> None:
        self.route(self.board.waiting_lines(), now)

    def rules_of(self, line_id: str) -> LineRules:
        rules = self.line(line_id)
        assert rules is not None
        return rules

    def _route_line(self, rules: LineRules, now: float) -> None:
        self.wakeups.pop(rules.line, None)
        if not self.board.waiting_count(rules.line):
            return
        waiting = self.board.waiting_ids(rules.line)
        if rules.queue.order == "newest_first":
            waiting.reverse()
        availability = line_availability(rules, self.board, now)
        free = sum(1 for reason in availability.values() if reason is None)
        blocked = False
        for dialog_id in waiting:
            if not free:
                break  # nobody on the line can take anything, an owner included
            dialog = self.board.dialogs[dialog_id]
            plain = not dialog.tried and not dialog.responsible_id and not dialog.last_operator_id
            if blocked and plain:
                continue  # same inputs as a dialog that just found nobody
            choice = choose(dialog, rules, self.board, now, availability)
            if choice.action == "wait":
                blocked = blocked or plain
                if choice.wake_at is not None:
                    self._wake(rules.line, choice.wake_at)
                if choice.reason == "outside_line_hours":
                    break
                continue
            self._apply(dialog, choice, rules, now)
            for operator_id in choice.operator_ids:
                reason = unavailable_reason(operator_id, rules, self.board, now)
                free -= reason is not None and availability[operator_id] is None
                availability[operator_id] = reason
        self._schedule_shift_wakeup(rules, now)
        self._update_positions(rules)

    def _wake(self, line_id: str, at: float) -> None:
        current = self.wakeups.get(line_id)
        if current is None or at < current:
            self.wakeups[line_id] = at

    def _schedule_shift_wakeup(self, rules: LineRules, now: float) -> None:
        """An operator whose shift starts later may serve the dialogs still waiting."""
        if not self.board.waiting_count(rules.line):
            return
        for schedule in rules.operator_schedules.values():
            opens = schedule.next_opening(now)
            if opens is not None and opens > now:
                self._wake(rules.line, opens)

    def _apply(self, dialog: DialogState, choice: Choice, rules: LineRules, now: float) -> None:
        decision = self.decide(
            dialog,
            rules.line,
            now,
            choice.action,
            choice.operator_ids,
            choice.path,
            choice.reason,
            choice.skipped,
        )
        tried = () if choice.wrapped else dialog.tried
        tried = tried + tuple(op for op in choice.operator_ids if op not in tried)
        if choice.action == "offer":
            self.offer(dialog, choice.operator_ids, decision.decision_id, rules, now, tried)
            return
        via: AssignedVia = "direct" if choice.path == "queue" else choice.path
        self.assign(dialog, choice.operator_ids[0], via, decision.decision_id, now, tried)

    def decide(
        self,
        dialog: DialogState,
        line_id: str,
        now: float,
        action: str,
        operator_ids: tuple[str, ...],
        path: str,
        reason: str = "",
        skipped: dict[str, str] | None = None,
    ) -> Decision:
        """Record who was chosen for the dialog and why the others were not."""
        decision = Decision(
            self.ids("dec"),
            dialog.dialog_id,
            line_id,
            now,
            self.rules.version,
            action,
            operator_ids,
            path,
            reason,
            skipped or {},
        )
        self.plan.decisions.append(decision)
        return decision

    def offer(
        self,
        dialog: DialogState,
        operator_ids: tuple[str, ...],
        decision_id: str,
        rules: LineRules,
        now: float,
        tried: tuple[str, ...],
    ) -> DialogState:
        if len(operator_ids) == 1:  # evenly: an offer counts as a dialog given
            self._given(operator_ids[0], now)
        event_id = self.ids("evt")
        offered = self.put(
            moved(
                dialog,
                state="offered",
                offered_to=operator_ids,
                offer_event_id=event_id,
                offer_seen_at=None,
                tried=tried,
                held=None,  # an operator transferred it out of the bot's hands
                voice=left(dialog.voice),
            )
        )
        data = DialogOffered(
            operator_ids=operator_ids,
            accept_timeout_s=rules.timers.accept_timeout_s,
            decision_id=decision_id,
        )
        self.emit(offered, data, now, event_id)
        return offered

    def assign(
        self,
        dialog: DialogState,
        operator_id: str,
        via: AssignedVia,
        decision_id: str | None,
        now: float,
        tried: tuple[str, ...] | None = None,
    ) -> DialogState:
        assigned = self.put(
            moved(
                dialog,
                tried=dialog.tried if tried is None else tried,
                state="assigned",
                operator_id=operator_id,
                offered_to=(),
                offer_event_id=None,
                offer_seen_at=None,
                assigned_at=now,
                unavailable_since=None,
                unavailable_reason=None,
                notified_no_operator=False,
                told_position=None,
                held=None,
                voice=left(dialog.voice),  # the bot leaves when an operator takes it
                # An invited colleague who gets the dialog is its operator, not a guest.
                participants=tuple(p for p in dialog.participants if p[0] != operator_id),
            )
        )
        self._given(operator_id, now)
        self.plan.customers[assigned.identity] = CustomerOwners(
            assigned.identity, assigned.responsible_id, operator_id
        )
        self.emit(
            assigned, DialogAssigned(operator_id=operator_id, via=via, decision_id=decision_id), now
        )
        return assigned

    def _given(self, operator_id: str, now: float) -> None:
        """The operator was just offered or given a dialog (what evenly compares)."""
        operator = self.board.operator(operator_id)
        self.put_operator(replace(operator, last_assigned_at=now))

    def to_queue(self, dialog: DialogState, now: float) -> DialogState:
        """Back to waiting, keeping its place in the queue."""
        return self.put(
            moved(
                dialog,
                state="waiting",
                operator_id=None,
                offered_to=(),
                offer_event_id=None,
                offer_seen_at=None,
                assigned_at=None,
                unavailable_since=None,
                unavailable_reason=None,
                waiting_since=now,
                notified_no_operator=False,
            )
        )

    def _update_positions(self, rules: LineRules) -> None:
        settings = rules.queue_position
        if not settings.on_move:
            return
        waiting = self.board.waiting(rules.line)
        if rules.queue.order == "newest_first":
            waiting.reverse()
        for position, dialog in enumerate(waiting, start=1):
            if dialog.told_position is not None and position < dialog.told_position:
                self.put(moved(dialog, told_position=position))
                self._tell_position(dialog, rules, position)

    def _tell_position(self, dialog: DialogState, rules: LineRules, position: int) -> None:
        settings = rules.queue_position
        online = sum(1 for op in rules.queue_order if self.board.operator(op).status == "online")
        wait_min = math.ceil(position * settings.average_handle_s / max(1, online) / 60)
        self.tell(dialog, settings.text, {"position": position, "wait_min": wait_min})

    # -- operators' actions -----------------------------------------------------------------

    def open_dialog(self, dialog_id: str) -> DialogState:
        dialog = self.board.with_dialog(dialog_id)
        if dialog is None:
            raise NotFoundError(f"dialog {dialog_id!r} is not open")
        return dialog

    def _offer_to(self, dialog_id: str, operator_id: str) -> DialogState:
        dialog = self.open_dialog(dialog_id)
        if dialog.state != "offered" or operator_id not in dialog.offered_to:
            if dialog.operator_id is not None:
                why = f"it is assigned to {dialog.operator_id!r}"
            else:
                why = f"it is {dialog.state}, offered to {list(dialog.offered_to)}"
            raise ConflictError(f"dialog {dialog_id!r} has no open offer to {operator_id!r}: {why}")
        return dialog

    def accept(self, dialog_id: str, operator_id: str, now: float) -> DialogState:
        """The operator takes an offered dialog; 409 if the offer is gone or they are full."""
        dialog = self._offer_to(dialog_id, operator_id)
        rules = self.line(dialog.line_id)
        if rules is not None:
            self._check_capacity(dialog, operator_id, rules)
        others = tuple(op for op in dialog.offered_to if op != operator_id)
        assigned = self.assign(dialog, operator_id, "accept", None, now)
        if others:
            self.emit(assigned, DialogOfferWithdrawn(operator_ids=others, reason="taken"), now)
        self.route((), now)
        return assigned

    def _check_capacity(self, dialog: DialogState, operator_id: str, rules: LineRules) -> None:
        counted = rules.capacity.counted_states
        this_one = 1 if "offered" in counted else 0
        line_load = self.board.load(operator_id, counted, dialog.line_id) - this_one
        if line_load >= rules.capacity.max_dialogs_per_operator:
            raise ConflictError(
                f"operator {operator_id!r} is at capacity on line {dialog.line_id!r} "
                f"({line_load} of {rules.capacity.max_dialogs_per_operator})"
            )
        across = rules.capacity.max_dialogs_across_lines
        total = self.board.load(operator_id, counted, None) - this_one
        if across is not None and total >= across:
            raise ConflictError(
                f"operator {operator_id!r} is at capacity over all lines ({total} of {across})"
            )

    def skip(self, dialog_id: str, operator_id: str, now: float) -> DialogState:
        """The operator passes on an offer: it goes on to the next operator at once."""
        dialog = self.withdraw(
            self._offer_to(dialog_id, operator_id), (operator_id,), "skipped", now
        )
        self.route([dialog.line_id], now)
        return self.board.with_dialog(dialog_id) or dialog

    def withdraw(
        self,
        dialog: DialogState,
        operator_ids: tuple[str, ...],
        reason: WithdrawnReason,
        now: float,
    ) -> DialogState:
        remaining = tuple(op for op in dialog.offered_to if op not in operator_ids)
        if remaining:
            updated = self.put(moved(dialog, offered_to=remaining))
        else:
            updated = self.to_queue(dialog, now)
        self.emit(updated, DialogOfferWithdrawn(operator_ids=operator_ids, reason=reason), now)
        return updated

    def finish(self, dialog_id: str, now: float, by: str | None = None) -> DialogState:
        dialog = self.open_dialog(dialog_id)
        closed = self.close(dialog, "finished", now, by)
        self.voice.finished(closed, now)
        self.route([dialog.line_id], now)
        return closed

    def close(
        self,
        dialog: DialogState,
        reason: ClosedReason,
        now: float,
        by: str | None = None,
        decline: Decline | None = None,
    ) -> DialogState:
        if dialog.state == "offered":
            dialog = self.withdraw(dialog, dialog.offered_to, "closed", now)
        closed = self.put(moved(dialog, state="closed", closed_reason=reason, closed_at=now))
        data = DialogClosed(
            reason=reason, operator_id=dialog.operator_id, closed_by=by, decline=decline
        )
        self.emit(closed, data, now)
        return closed

    def answered(self, dialog_id: str, operator_id: str | None, now: float) -> DialogState:
        """An operator's reply was accepted: the first one makes the dialog answered."""
        dialog = self.voice.replied(self.open_dialog(dialog_id), now)
        if dialog.state != "assigned" or dialog.operator_id is None:
            return dialog
        if operator_id is not None and operator_id != dialog.operator_id:
            return dialog
        answered = self.put(moved(dialog, state="answered"))
        self.emit(answered, DialogAnswered(operator_id=dialog.operator_id), now)
        self.route((), now)
        return answered

    def set_operator(
        self, operator_id: str, status: OperatorStatus, working: bool, now: float
    ) -> OperatorState:
        """A status or work-day change; an operator who becomes unavailable loses their
        open offers at once, and their dialogs follow the line's ``unavailable`` rules."""
        old = self.board.operator(operator_id)
        changed = (old.status, old.working) != (status, working)
        operator = replace(
            old, status=status, working=working, status_since=now if changed else old.status_since
        )
        self.put_operator(operator)
        reason = _unavailability(old, operator)
        for dialog in self.board.of_operator(operator_id):
            rules = self.line(dialog.line_id)
            needs_work_day = rules is not None and rules.require_work_day
            if reason == "end_of_day" and not needs_work_day:
                continue  # this line does not care about work days
            if dialog.state == "offered":
                if status != "online" or (needs_work_day and not working):
                    self.withdraw(dialog, (operator_id,), "unavailable", now)
            elif reason is not None:
                self.operator_unavailable(dialog, reason, now)
            elif dialog.unavailable_since is not None and _back(operator, dialog):
                self.put(moved(dialog, unavailable_since=None, unavailable_reason=None))
        self.route(self.rules.lines_of_operator.get(operator_id, ()), now)
        return operator

    def operator_unavailable(
        self, dialog: DialogState, reason: UnavailableReason, now: float
    ) -> None:
        rules = self.line(dialog.line_id)
        if rules is None or dialog.pinned:
            return  # a pinned dialog stays with its operator whatever the rule says
        rule = rules.unavailable_rule(reason)
        if rule.action == "keep":
            return
        if rule.grace_s > 0:
            if dialog.unavailable_since is None:
                self.put(moved(dialog, unavailable_since=now, unavailable_reason=reason))
            return
        self._unavailable_action(dialog, reason, now)

    def _unavailable_action(
        self, dialog: DialogState, reason: UnavailableReason, now: float
    ) -> None:
        rules = self.rules_of(dialog.line_id)
        rule = rules.unavailable_rule(reason)
        operator_id = dialog.operator_id or ""
        self.tell(dialog, rule.customer_text, {"line": rules.line})
        if rule.action == "close":
            self.close(dialog, "operator_unavailable", now)
            return
        returned = self.to_queue(dialog, now)
        returned_reason: ReturnedReason = reason
        self.emit(returned, DialogReturned(operator_id=operator_id, reason=returned_reason), now)

    def rules_changed(self, rules: PortalRules, now: float) -> None:
        """New rules: operators no longer in a line's queue lose its offers and dialogs; a
        dialog held by a bot or for consent the line no longer has joins the queue."""
        self.rules = rules
        self.voice.rules_changed(now)
        for dialog in list(self.board.dialogs.values()):
            line = self.line(dialog.line_id)
            members = set(line.queue_order) if line is not None else set()
            gone = tuple(op for op in dialog.holders if op not in members)
            if not gone:
                continue
            if dialog.state == "offered":
                self.withdraw(dialog, gone, "rules_changed", now)
            elif line is not None:
                self.operator_unavailable(dialog, "removed", now)
        self.route_all(now)

    def set_owner(
        self, identity: str, responsible_id: str | None, last: CustomerOwners | None, now: float
    ) -> None:
        """The customer's responsible operator (CRM); open dialogs of theirs learn it.
        ``last`` is the stored record; one this step already changed is newer."""
        last = self.plan.customers.get(identity, last)
        last_operator = last.last_operator_id if last else None
        self.plan.customers[identity] = CustomerOwners(identity, responsible_id, last_operator)
        lines = set()
        for dialog in list(self.board.dialogs.values()):
            if dialog.identity == identity:
                self.put(moved(dialog, responsible_id=responsible_id))
                lines.add(dialog.line_id)
        self.route(lines, now)

    def contact_merged(
        self, merged_id: str, survivor_id: str, responsible_id: str | None, now: float
    ) -> None:
        """The portal merged a contact (docs/crm.md): its open dialogs belong to the
        survivor from their next event on; the survivor's follow its combined responsible."""
        lines = set()
        for dialog in list(self.board.dialogs.values()):
            if dialog.contact_id in (merged_id, survivor_id):
                self.put(moved(dialog, contact_id=survivor_id, responsible_id=responsible_id))
                lines.add(dialog.line_id)
        self.route(lines, now)

    def offers_reached(self, event_ids: Iterable[str], now: float) -> None:
        """These offer events reached the portal: their accept timeouts start now."""
        for event_id in event_ids:
            dialog_id = self.board.offers.get(event_id)
            dialog = self.board.with_dialog(dialog_id) if dialog_id else None
            if dialog is not None and dialog.offer_seen_at is None:
                self.put(moved(dialog, offer_seen_at=now))

    # -- timers -----------------------------------------------------------------------------

    def deadline(self, dialog: DialogState) -> float | None:
        """When the clock alone changes this dialog next (None: nothing waits on time)."""
        rules = self.line(dialog.line_id)
        if rules is None:
            return None
        timers = rules.timers
        times: list[float] = []
        if dialog.state == "offered" and dialog.offer_seen_at is not None:
            times.append(dialog.offer_seen_at + timers.accept_timeout_s)
        if (
            dialog.state == "assigned"
            and timers.no_answer_timeout_s is not None
            and not dialog.pinned
        ):
            assert dialog.assigned_at is not None
            times.append(dialog.assigned_at + timers.no_answer_timeout_s)
        if dialog.unavailable_since is not None and dialog.unavailable_reason is not None:
            rule = rules.unavailable_rule(dialog.unavailable_reason)  # type: ignore[arg-type]
            times.append(dialog.unavailable_since + rule.grace_s)
        if (
            dialog.state == "waiting"
            and dialog.held is None
            and timers.no_operator_timeout_s is not None
            and not dialog.notified_no_operator
        ):
            times.append(dialog.waiting_since + timers.no_operator_timeout_s)
        if dialog.voice is not None and (own := self.voice.deadline(dialog)) is not None:
            times.append(own)
        return min(times) if times else None

    def fire(self, dialog_ids: Iterable[str], lines: Iterable[str], now: float) -> None:
        """Run what fell due by ``now``: each transition once, however late the clock is."""
        touched: set[str] = set(lines)
        for line_id in touched:
            self.wakeups.pop(line_id, None)
        for dialog_id in dialog_ids:
            dialog = self.board.with_dialog(dialog_id)
            due = self.deadline(dialog) if dialog is not None else None
            if dialog is None or due is None or due > now:
                continue
            touched.add(self._fire_one(dialog, now).line_id)
            self.voice.fire(dialog_id, now)
        self.route(touched, now)

    def _fire_one(self, dialog: DialogState, now: float) -> DialogState:
        rules = self.rules_of(dialog.line_id)
        timers = rules.timers
        seen = dialog.offer_seen_at
        if dialog.state == "offered" and seen is not None and now >= seen + timers.accept_timeout_s:
            self.tell(dialog, timers.accept_timeout_text, {"line": rules.line})
            return self.withdraw(dialog, dialog.offered_to, "expired", now)
        no_answer = timers.no_answer_timeout_s
        assigned_at = dialog.assigned_at or 0.0
        if (
            dialog.state == "assigned"
            and not dialog.pinned
            and no_answer is not None
            and now >= assigned_at + no_answer
        ):
            self.tell(dialog, timers.no_answer_text, {"line": rules.line})
            returned = self.to_queue(dialog, now)
            operator_id = dialog.operator_id or ""
            self.emit(returned, DialogReturned(operator_id=operator_id, reason="no_answer"), now)
            return returned
        if dialog.unavailable_since is not None and dialog.unavailable_reason is not None:
            reason: UnavailableReason = dialog.unavailable_reason  # type: ignore[assignment]
            if now >= dialog.unavailable_since + rules.unavailable_rule(reason).grace_s:
                self._unavailable_action(dialog, reason, now)
                return dialog
        no_operator = timers.no_operator_timeout_s
        if (
            dialog.state == "waiting"
            and dialog.held is None
            and not dialog.notified_no_operator
            and no_operator is not None
            and now >= dialog.waiting_since + no_operator
        ):
            self.tell(dialog, timers.no_operator_text, {"line": rules.line})
            return self.put(moved(dialog, notified_no_operator=True))
        return dialog


def _back(operator: OperatorState, dialog: DialogState) -> bool:
    """The operator is available again for what made this dialog wait on them."""
    if dialog.unavailable_reason == "end_of_day":
        return operator.working and operator.status == "online"
    return operator.status == "online"


def unavailable_now(operator: OperatorState, rules: LineRules) -> UnavailableReason | None:
    """Why the operator cannot keep dialogs of this line at the moment, as the line's
    ``unavailable`` rules name it, or None (what an unpinned dialog is judged by)."""
    if operator.status != "online":
        return {"offline": "offline", "away": "away", "vacation": "vacation"}[operator.status]  # type: ignore[return-value]
    if rules.require_work_day and not operator.working:
        return "end_of_day"
    if operator.operator_id not in rules.queue_order:
        return "removed"
    return None


def _unavailability(old: OperatorState, new: OperatorState) -> UnavailableReason | None:
    """Why the operator stopped being available for their dialogs, if they did."""
    if new.status != "online" and new.status != old.status:
        return {"offline": "offline", "away": "away", "vacation": "vacation"}[new.status]  # type: ignore[return-value]
    if old.working and not new.working:
        return "end_of_day"
    return None
