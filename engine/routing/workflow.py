"""The operator's workflow on a portal's dialogs: decline, pin, transfer, participants,
replies, blocks, and what an operator or a line's queue holds.

Pure like the dispatcher it works through (``engine.routing.dispatcher``): every action
first checks everything it needs and refuses with a reason (``NotFoundError`` 404,
``ConflictError`` 409 with a code, ``ValidationFailedError`` 422) before it changes
anything, so a refused action leaves no trace; then it changes the board and records its
events in the dispatcher's plan, which the portal's router commits in one transaction.
docs/routing.md, "The operator API", describes each action, its events and refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from engine.errors import ConflictError, NotFoundError, ValidationFailedError, WindowClosedError
from engine.events import (
    CustomerUnblocked,
    Decline,
    DialogParticipantJoined,
    DialogParticipantLeft,
    DialogPinned,
    DialogQueued,
    DialogTransferred,
    DialogUnpinned,
    ParticipantRole,
)
from engine.models import OutboundContent, ReplySender
from engine.routing.bot_turns import left
from engine.routing.choice import unavailable_reason
from engine.routing.dispatcher import Dispatcher, unavailable_now
from engine.routing.plan import CustomerOwners
from engine.routing.reply_text import ShownReply, persona_sender, signed
from engine.routing.rules import PersonaRules
from engine.routing.state import Block, Board, DialogState, OperatorState, moved
from engine.routing.windows import ReplyWindow, closes_at

HolderRole = Literal["operator", "offered", "invited", "supervisor"]
"""How an operator is in a dialog."""


@dataclass(frozen=True, slots=True)
class ReplyConditions:
    """What the reply check needs to know of the dialog's channel."""

    shows_sender: bool = False
    """The channel shows who sent a message: the persona's sender goes beside the reply
    (``ReplyRequest.sender``) instead of a name before the text."""
    window: ReplyWindow | None = None
    """The dialog's messaging window (docs/channels/contract.md, "Messaging windows")."""
    last_customer_at: float | None = None
    """When the customer last wrote in the dialog: read only for a dialog with a window and
    no ``window_closes_at`` (one stored before the router kept it)."""
    outside_window_form: str | None = None
    """The form the channel carries a reply in after the window closed (WhatsApp:
    ``template``); None: such a reply is refused."""


def window_closed_at(conditions: ReplyConditions, dialog: DialogState) -> float | None:
    """When the dialog's messaging window closes (None: no window): the router's
    ``window_closes_at``, kept from the customer's messages and the events that count; for a
    dialog stored before it was kept, the customer's last message (else the opening) plus
    the window."""
    if conditions.window is None:
        return None
    if dialog.window_closes_at is not None:
        return dialog.window_closes_at
    since = conditions.last_customer_at
    return closes_at(conditions.window, since if since is not None else dialog.opened_at)


def window_form(conditions: ReplyConditions, dialog: DialogState, now: float) -> str | None:
    """None for a reply inside the dialog's window (or a dialog without one); the channel's
    other form for one after it; ``WindowClosedError`` when the channel has none."""
    closed_at = window_closed_at(conditions, dialog)
    window = conditions.window
    if window is None or closed_at is None or now < closed_at:
        return None
    if conditions.outside_window_form is not None:
        return conditions.outside_window_form
    raise WindowClosedError(
        f"{dialog.channel} takes replies in {window.what} only ({window.seconds:g} s after "
        f"the customer's last message{', one reply' if window.one_reply else ''}); dialog "
        f"{dialog.dialog_id!r}'s window closed at {closed_at}: the customer writes first",
        closed_at,
    )


class Workflow:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    @property
    def board(self) -> Board:
        return self._dispatcher.board

    # -- who is who --------------------------------------------------------------------------

    def known_operator(self, operator_id: str) -> OperatorState:
        """An operator of the portal: in a line's queue, or one who set a status or a profile
        through the API; 404 otherwise."""
        lines = self._dispatcher.rules.lines_of_operator
        if operator_id not in lines and operator_id not in self.board.operators:
            raise NotFoundError(
                f"no operator {operator_id!r} in portal {self._dispatcher.portal_id!r}: not in a "
                "line's queue, and never set a status or a profile"
            )
        return self.board.operator(operator_id)

    def set_profile(
        self, operator_id: str, display_name: str | None, avatar_url: str | None = None
    ) -> OperatorState:
        """What customers see of the operator's replies (persona ``profile``): the name,
        and the avatar where the channel shows a sender. Sets both (docs/routing.md)."""
        operator = replace(
            self.board.operator(operator_id), display_name=display_name, avatar_url=avatar_url
        )
        self._dispatcher.put_operator(operator)
        return operator

    # -- closing -----------------------------------------------------------------------------

    def decline(
        self,
        dialog_id: str,
        now: float,
        *,
        by: str | None = None,
        spam: bool = False,
        customer_text: str | None = None,
        block: bool = False,
    ) -> DialogState:
        """Close the dialog as declined: refused, or spam; the customer is sent
        ``customer_text`` if given; with ``block`` (spam only) their identity opens no more
        dialogs until unblocked."""
        if block and not spam:
            raise ValidationFailedError("block: only a decline as spam blocks the customer")
        dispatcher = self._dispatcher
        dialog = dispatcher.open_dialog(dialog_id)
        dispatcher.tell(dialog, customer_text, {})
        decline = Decline(spam=spam, customer_told=bool(customer_text), blocked=block)
        closed = dispatcher.close(dialog, "declined", now, by, decline)
        if block:
            record = Block(dialog.identity, dialog.dialog_id, now, by)
            self.board.blocked[record.identity] = record
            dispatcher.plan.blocks[record.identity] = record
        dispatcher.route([dialog.line_id], now)
        return closed

    def unblock(
        self, identity: str, blocking: DialogState, now: float, by: str | None = None
    ) -> Block:
        """The identity (a contact, or a connector identity: ``DialogState.identity``) opens
        dialogs again; ``blocking`` is the dialog whose decline blocked it, whose stream
        hears of it."""
        block = self.board.blocked.get(identity)
        if block is None:
            raise NotFoundError(f"customer {identity!r} is not blocked")
        del self.board.blocked[identity]
        self._dispatcher.plan.blocks[identity] = None
        data = CustomerUnblocked(
            connector_id=blocking.connector_id,
            customer_id=blocking.customer_id,
            by=by,
            messages=block.messages,
        )
        self._dispatcher.note(blocking, data, now)
        return block

    # -- pinning -----------------------------------------------------------------------------

    def pin(self, dialog_id: str, now: float, by: str | None = None) -> DialogState:
        """Keep the dialog with its operator: no unavailable rule and no no-answer timer
        returns it to the queue (a grace already running is cancelled)."""
        dialog = self._dispatcher.open_dialog(dialog_id)
        if dialog.operator_id is None:
            raise ConflictError(
                f"dialog {dialog_id!r} has no operator to pin it to: it is {dialog.state}",
                "not_assigned",
            )
        if dialog.pinned:
            raise ConflictError(
                f"dialog {dialog_id!r} is already pinned to {dialog.operator_id!r}",
                "already_pinned",
            )
        pinned = self._dispatcher.put(
            moved(dialog, pinned=True, unavailable_since=None, unavailable_reason=None)
        )
        self._dispatcher.emit(pinned, DialogPinned(operator_id=dialog.operator_id, by=by), now)
        return pinned

    def unpin(self, dialog_id: str, now: float, by: str | None = None) -> DialogState:
        """The line's rules apply again, at once: an operator unavailable now loses the dialog
        by the rule for why (its grace starting now); the no-answer timer starts again."""
        dispatcher = self._dispatcher
        dialog = dispatcher.open_dialog(dialog_id)
        if not dialog.pinned or dialog.operator_id is None:
            raise ConflictError(f"dialog {dialog_id!r} is not pinned", "not_pinned")
        assigned_at = now if dialog.state == "assigned" else dialog.assigned_at
        unpinned = dispatcher.put(moved(dialog, pinned=False, assigned_at=assigned_at))
        dispatcher.emit(unpinned, DialogUnpinned(operator_id=dialog.operator_id, by=by), now)
        rules = dispatcher.line(dialog.line_id)
        reason = None
        if rules is not None:
            reason = unavailable_now(self.board.operator(dialog.operator_id), rules)
        if reason is not None:
            dispatcher.operator_unavailable(unpinned, reason, now)
        dispatcher.route([dialog.line_id], now)
        return self.board.with_dialog(dialog_id) or unpinned

    # -- transfers ---------------------------------------------------------------------------

    def transfer_to_operator(
        self,
        dialog_id: str,
        operator_id: str,
        now: float,
        *,
        by: str | None = None,
        responsible_id: str | None = None,
        owners: CustomerOwners | None = None,
    ) -> DialogState:
        """Give the dialog to ``operator_id`` on its line: offered to them alone when the line
        requires accepting, else assigned (``via: transfer``). Refused when they cannot take
        it now (status, work day, their hours, capacity). ``responsible_id`` also makes that
        operator the customer's responsible (``owners``: the stored CRM record)."""
        dispatcher = self._dispatcher
        dialog = dispatcher.open_dialog(dialog_id)
        self.known_operator(operator_id)
        if responsible_id is not None:
            self.known_operator(responsible_id)
        if operator_id in dialog.holders:
            raise ConflictError(
                f"dialog {dialog_id!r} is already {dialog.state} to {operator_id!r}",
                "already_theirs",
            )
        rules = dispatcher.line(dialog.line_id)
        if rules is not None:
            why = unavailable_reason(operator_id, rules, self.board, now)
            if why is not None:
                code = "at_capacity" if why.startswith("at_capacity") else "operator_unavailable"
                raise ConflictError(
                    f"operator {operator_id!r} cannot take dialog {dialog_id!r} on line "
                    f"{dialog.line_id!r} now: {why}",
                    code,
                )
        released = self._released(dialog, now, keep_line=True)
        released = dispatcher.put(
            moved(
                released,
                participants=tuple(p for p in released.participants if p[0] != operator_id),
            )
        )
        dispatcher.emit(
            released,
            DialogTransferred(
                from_line=dialog.line_id,
                to_line=dialog.line_id,
                reason="operator",
                from_operator_id=_holder(dialog),
                to_operator_id=operator_id,
                by=by,
            ),
            now,
        )
        action = "offer" if rules is not None and rules.queue.require_accept else "assign"
        decision = dispatcher.decide(
            released, dialog.line_id, now, action, (operator_id,), "transfer"
        )
        tried = released.tried + ((operator_id,) if operator_id not in released.tried else ())
        if rules is not None and action == "offer":
            dispatcher.offer(released, (operator_id,), decision.decision_id, rules, now, tried)
        else:
            dispatcher.assign(released, operator_id, "transfer", decision.decision_id, now, tried)
        if responsible_id is not None:
            dispatcher.set_owner(dialog.identity, responsible_id, owners, now)
        dispatcher.route([dialog.line_id], now)
        return self.board.with_dialog(dialog_id) or released

    def transfer_to_line(
        self,
        dialog_id: str,
        line_id: str,
        now: float,
        *,
        by: str | None = None,
        responsible_id: str | None = None,
        owners: CustomerOwners | None = None,
    ) -> DialogState:
        """Move the dialog to the back of another line's queue; that line's rules apply from
        then on (hours, queue, capacity, CRM). Its operator lets go of it, its pin ends."""
        dispatcher = self._dispatcher
        dialog = dispatcher.open_dialog(dialog_id)
        if line_id == dialog.line_id:
            raise ConflictError(f"dialog {dialog_id!r} is already on line {line_id!r}", "same_line")
        rules = dispatcher.line(line_id)
        if rules is None:
            raise NotFoundError(
                f"line {line_id!r} of portal {dispatcher.portal_id!r} has no routing rules"
            )
        if responsible_id is not None:
            self.known_operator(responsible_id)
        released = self._released(dialog, now, keep_line=False)
        position = dispatcher.join_position(line_id)
        joined = dispatcher.put(
            moved(released, line_id=line_id, queued_at=now, tried=(), told_position=position)
        )
        dispatcher.emit(
            joined,
            DialogTransferred(
                from_line=dialog.line_id,
                to_line=line_id,
                reason="operator",
                from_operator_id=_holder(dialog),
                by=by,
            ),
            now,
        )
        closed = not rules.schedule.is_open(now)
        opens_at = rules.schedule.next_opening(now) if closed else None
        queued = DialogQueued(reason="transferred", position=position, opens_at=opens_at)
        dispatcher.emit(joined, queued, now)
        if closed:
            dispatcher.tell_outside_hours(joined, rules, now)
        if responsible_id is not None:
            dispatcher.set_owner(dialog.identity, responsible_id, owners, now)
        dispatcher.route([dialog.line_id, line_id], now)
        return self.board.with_dialog(dialog_id) or joined

    def _released(self, dialog: DialogState, now: float, keep_line: bool) -> DialogState:
        """The dialog let go by whoever had it or was offered it: waiting, unpinned, out of
        the bot's hands."""
        dispatcher = self._dispatcher
        if dialog.state == "offered":
            dialog = dispatcher.withdraw(dialog, dialog.offered_to, "transferred", now)
        if dialog.state != "waiting":
            dialog = dispatcher.to_queue(dialog, now)
        elif not keep_line:
            dialog = moved(dialog, waiting_since=now, notified_no_operator=False)
        # An operator moved it: the bot leaves and any hold ends (docs/bot.md).
        return dispatcher.put(moved(dialog, pinned=False, held=None, voice=left(dialog.voice)))

    # -- participants ------------------------------------------------------------------------

    def invite(
        self, dialog_id: str, operator_id: str, now: float, by: str | None = None
    ) -> DialogState:
        """``operator_id`` joins the dialog beside its operator and may reply."""
        return self._join(dialog_id, operator_id, "invited", by, now)

    def join_silently(self, dialog_id: str, operator_id: str, now: float) -> DialogState:
        """A supervisor joins: sees the dialog, never replies, unknown to the customer."""
        return self._join(dialog_id, operator_id, "supervisor", operator_id, now)

    def _join(
        self,
        dialog_id: str,
        operator_id: str,
        role: ParticipantRole,
        by: str | None,
        now: float,
    ) -> DialogState:
        dialog = self._dispatcher.open_dialog(dialog_id)
        self.known_operator(operator_id)
        if operator_id == dialog.operator_id:
            raise ConflictError(
                f"operator {operator_id!r} is dialog {dialog_id!r}'s own operator",
                "already_operator",
            )
        current = dialog.role_of(operator_id)
        if current is not None:
            raise ConflictError(
                f"operator {operator_id!r} is already in dialog {dialog_id!r} as {current}",
                "already_participant",
            )
        joined = self._dispatcher.put(
            moved(dialog, participants=(*dialog.participants, (operator_id, role)))
        )
        data = DialogParticipantJoined(operator_id=operator_id, role=role, by=by)
        self._dispatcher.emit(joined, data, now)
        return joined

    def leave(self, dialog_id: str, operator_id: str, now: float) -> DialogState:
        """A participant leaves; the dialog's own operator cannot (transfer or finish)."""
        dialog = self._dispatcher.open_dialog(dialog_id)
        role = dialog.role_of(operator_id)
        if role is None:
            raise ConflictError(
                f"operator {operator_id!r} is not a participant of dialog {dialog_id!r}",
                "not_participant",
            )
        left = self._dispatcher.put(
            moved(dialog, participants=tuple(p for p in dialog.participants if p[0] != operator_id))
        )
        self._dispatcher.emit(left, DialogParticipantLeft(operator_id=operator_id, role=role), now)
        return left

    # -- replies -----------------------------------------------------------------------------

    def reply(
        self,
        dialog_id: str,
        operator_id: str | None,
        content: OutboundContent,
        now: float,
        conditions: ReplyConditions,
    ) -> ShownReply:
        """Check an operator's reply and return what the customer will see: the sender
        beside it where the channel shows one, else the persona's name before the text.
        Refused for a silent supervisor and outside the dialog's messaging window, unless the
        channel carries such a reply in another form (``outside_window_form``: the reply is
        marked with it); the assigned operator's first reply answers the dialog."""
        dialog = self._dispatcher.open_dialog(dialog_id)
        if operator_id is not None and dialog.role_of(operator_id) == "supervisor":
            raise ConflictError(
                f"operator {operator_id!r} joined dialog {dialog_id!r} silently as a "
                "supervisor and cannot reply",
                "silent_participant",
            )
        form = window_form(conditions, dialog, now)
        window = conditions.window
        if window is not None and window.one_reply and form is None:
            self._dispatcher.put(moved(dialog, window_closes_at=now))  # before it is stamped
        self._dispatcher.answered(dialog_id, operator_id, now)
        sender = self.persona_sender(dialog, operator_id)
        if conditions.shows_sender:
            return ShownReply(content, sender, form)
        return ShownReply(signed(content, sender.name if sender else None), None, form)

    def persona_sender(self, dialog: DialogState, operator_id: str | None) -> ReplySender | None:
        """Who the customer sees sending a reply by ``operator_id`` (the dialog's operator
        when unnamed), as the line's persona says; None: nobody."""
        rules = self._dispatcher.line(dialog.line_id)
        persona = rules.persona if rules is not None else PersonaRules()
        replier = operator_id or dialog.operator_id
        operator = self.board.operator(replier) if replier is not None else None
        return persona_sender(persona, operator)

    def persona_name(self, dialog: DialogState, operator_id: str | None) -> str | None:
        """The name the persona shows for a reply by ``operator_id`` ({operator_name})."""
        sender = self.persona_sender(dialog, operator_id)
        return sender.name if sender is not None else None

    # -- reading -----------------------------------------------------------------------------

    def dialogs_of(self, operator_id: str) -> list[tuple[HolderRole, DialogState]]:
        """The open dialogs the operator holds, is offered or takes part in, with how; oldest
        first."""
        self.known_operator(operator_id)
        found: list[tuple[HolderRole, DialogState]] = []
        for dialog in self.board.dialogs.values():
            if dialog.operator_id == operator_id:
                found.append(("operator", dialog))
            elif operator_id in dialog.offered_to:
                found.append(("offered", dialog))
            elif (role := dialog.role_of(operator_id)) is not None:
                found.append((role, dialog))
        found.sort(key=lambda item: (item[1].opened_at, item[1].dialog_id))
        return found

    def queue_of(self, line_id: str) -> list[DialogState]:
        """The line's waiting dialogs in the order the line serves them (1: next)."""
        waiting = self.board.waiting(line_id)
        rules = self._dispatcher.line(line_id)
        if rules is not None and rules.queue.order == "newest_first":
            waiting.reverse()
        return waiting


def _holder(dialog: DialogState) -> str | None:
    """Who had the dialog: its operator, or the one operator it was offered to."""
    if dialog.operator_id is not None:
        return dialog.operator_id
    return dialog.offered_to[0] if len(dialog.offered_to) == 1 else None
