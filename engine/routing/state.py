"""The routing state of one portal: its open dialogs and its operators.

Records are frozen; a change replaces a record through ``Board.put_dialog`` or
``Board.put_operator``, which keep the load index (who holds how many dialogs in which
state on which line) exact, so capacity checks never scan the dialogs.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import orjson

from engine.events import DialogStateName, DialogView, HeldReason, ParticipantRole

OperatorStatus = Literal["online", "away", "offline", "vacation"]


@dataclass(frozen=True, slots=True)
class OperatorState:
    """An operator of the portal as the router knows them (portal-wide, not per line)."""

    operator_id: str
    status: OperatorStatus = "offline"
    working: bool = False
    """True between starting and ending the work day."""
    last_assigned_at: float = 0.0
    status_since: float = 0.0
    display_name: str | None = None
    """The name customers see with the operator's replies (persona ``profile``)."""
    avatar_url: str | None = None
    """The https picture beside their replies where the channel shows a sender (persona
    ``profile``); absent in operators stored before avatars, which load without one."""


@dataclass(frozen=True, slots=True)
class VoiceState:
    """What the line's own messages and its bot know of one dialog (docs/line-messages.md,
    docs/bot.md). Kept with the dialog, so its timers are recomputed and its bot continues
    after a restart; ``None`` on a line that has neither."""

    customer_name: str | None = None
    """The customer's name as their channel last gave it ({customer_name})."""
    language: str | None = None
    """The customer's language tag as their channel last told it (matched at render time)."""
    consent: str = "unknown"
    """The customer's consent as this dialog knows it: unknown, given or declined."""
    consent_asked: bool = False
    """A consent request was sent here and awaits its answer."""
    bot: str | None = None
    """The bot's ``BotState`` as JSON, when the line's bot took the dialog."""
    answered_at: float | None = None
    """When an operator first replied in the dialog (the KPI's first answer)."""
    wait_since: float | None = None
    """A customer's message has waited for an operator's answer since then."""
    wait_alerted: bool = False
    """The KPI alert of that wait went out."""
    silent_since: float | None = None
    """An operator replied then and the customer has not written since."""
    follow_ups_sent: int = 0
    """Reminders sent during that silence."""
    rating_asked: bool = False
    """The rating request went out after the finish and awaits its answer."""
    rating: int | None = None
    """The customer's rating of the finished dialog."""


@dataclass(slots=True)
class DialogState:
    """One dialog: its place in the lifecycle and the timestamps its timers derive from.

    Treated as immutable: a change is a new record made by ``moved`` and put on the board.
    Not ``frozen`` only because a frozen dataclass's ``__init__`` sets every field through
    ``object.__setattr__``, which made building records the router's largest cost.
    """

    dialog_id: str
    line_id: str
    connector_id: str
    channel: str
    dialog_key: str
    customer_id: str
    opened_at: float
    state: DialogStateName = "waiting"
    operator_id: str | None = None
    offered_to: tuple[str, ...] = ()
    offer_event_id: str | None = None
    offer_seen_at: float | None = None
    """When the offer reached the portal: the accept timeout runs from here."""
    tried: tuple[str, ...] = ()
    """Operators this dialog was already offered or assigned to (strictly skips them)."""
    waiting_since: float = 0.0
    queued_at: float = 0.0
    """Its place in the queue: kept when it returns, so it is not sent to the back."""
    assigned_at: float | None = None
    unavailable_since: float | None = None
    unavailable_reason: str | None = None
    notified_no_operator: bool = False
    told_position: int | None = None
    responsible_id: str | None = None
    last_operator_id: str | None = None
    closed_reason: str | None = None
    contact_id: str | None = None
    """The customer's CRM contact (docs/crm.md); None for dialogs opened before contacts."""
    lead_id: str | None = None
    """The contact's lead on this line when the dialog opened, if it had one."""
    closed_at: float | None = None
    pinned: bool = False
    """Stays with its operator: unavailable rules and the no-answer timer leave it alone."""
    participants: tuple[tuple[str, ParticipantRole], ...] = ()
    """``(operator_id, role)`` of invited operators and silent supervisors, in join order."""
    held: HeldReason | None = None
    """Waiting outside the line's queue: the bot answers it, or consent is missing."""
    voice: VoiceState | None = None
    """The line's own messages and bot in this dialog (None: the line has neither)."""
    window_closes_at: float | None = None
    """When the dialog's messaging window closes: the customer's last message (or an event
    that counts) plus the dialog's window; None for a dialog without one."""
    address: dict[str, str] = field(default_factory=dict)
    """What a reply needs (a WhatsApp ``phone_number_id``, the comment to answer, a
    page-scoped id), from the customer's last message (``InboundMessage.address``); empty
    for a dialog stored before the engine kept it. Never changed in place."""

    @property
    def ref(self) -> str:
        """The conversation this dialog belongs to (``engine.store.records.dialog_ref``)."""
        return f"{self.connector_id}\x00{self.dialog_key}"

    @property
    def identity(self) -> str:
        """The key of CRM ownership (responsible, last operator): the customer's contact;
        connector and channel user id for a dialog opened before contacts existed."""
        return self.contact_id or f"{self.connector_id}/{self.customer_id}"

    @property
    def holders(self) -> tuple[str, ...]:
        """Operators whose load this dialog counts toward."""
        if self.state == "offered":
            return self.offered_to
        if self.operator_id is not None and self.state in ("assigned", "answered"):
            return (self.operator_id,)
        return ()

    def role_of(self, operator_id: str) -> ParticipantRole | None:
        """The operator's role as a participant, or None when they are not one."""
        for participant, role in self.participants:
            if participant == operator_id:
                return role
        return None

    def _view_fields(self) -> dict[str, Any]:
        return {
            "id": self.dialog_id,
            "line_id": self.line_id,
            "connector_id": self.connector_id,
            "channel": self.channel,
            "customer_id": self.customer_id,
            "state": self.state,
            "operator_id": self.operator_id,
            "offered_to": self.offered_to,
            "contact_id": self.contact_id,
            "lead_id": self.lead_id,
            "pinned": self.pinned,
            "participants": [{"operator_id": op, "role": role} for op, role in self.participants],
            "held": self.held,
            "window_closes_at": self.window_closes_at,
        }

    def view(self) -> DialogView:
        return DialogView(**self._view_fields())

    def view_json(self) -> bytes:
        """``view()`` as JSON, without building the model (every event is stamped)."""
        return orjson.dumps(self._view_fields())

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes dataclasses natively, fast

    @classmethod
    def from_json(cls, data: bytes) -> DialogState:
        values: dict[str, Any] = orjson.loads(data)
        values["offered_to"] = tuple(values["offered_to"])
        values["tried"] = tuple(values["tried"])
        values["participants"] = tuple(tuple(p) for p in values.get("participants", ()))
        voice = values.get("voice")
        values["voice"] = VoiceState(**voice) if voice is not None else None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Block:
    """A customer identity declined as spam with ``block``: it opens no more dialogs.

    Their later messages are stored in the history of the dialog that blocked them and
    counted here, never delivered (docs/routing.md, "Decline").
    """

    identity: str
    dialog_id: str
    blocked_at: float
    blocked_by: str | None
    messages: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, data: bytes) -> Block:
        return cls(**orjson.loads(data))


def operator_from_json(data: bytes) -> OperatorState:
    return OperatorState(**orjson.loads(data))


def operator_to_json(operator: OperatorState) -> bytes:
    return orjson.dumps(operator)


@dataclass
class Board:
    """A portal's open dialogs and operators, with an exact load index."""

    dialogs: dict[str, DialogState] = field(default_factory=dict)
    operators: dict[str, OperatorState] = field(default_factory=dict)
    open_by_ref: dict[str, str] = field(default_factory=dict)
    _by_line: defaultdict[tuple[str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """(operator, line, state) to the dialogs held so."""
    _by_state: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """(operator, state) to the dialogs held so over all lines."""
    _defaults: dict[str, OperatorState] = field(default_factory=dict)
    _waiting: defaultdict[str, list[tuple[float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """Per line, ``(queued_at, dialog_id)`` of its queued dialogs (waiting and not held by
    the bot or for consent), kept sorted: routing
    walks the queue in order on every step, so it is never sorted then."""
    _held: defaultdict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    offers: dict[str, str] = field(default_factory=dict)
    """The event id of each open offer to its dialog's id."""
    blocked: dict[str, Block] = field(default_factory=dict)
    """Customer identities that open no dialogs, by identity."""

    def operator(self, operator_id: str) -> OperatorState:
        """The operator's state; one the portal never mentioned is offline."""
        known = self.operators.get(operator_id)
        if known is not None:
            return known
        default = self._defaults.get(operator_id)
        if default is None:
            default = self._defaults[operator_id] = OperatorState(operator_id)
        return default

    def put_operator(self, operator: OperatorState) -> None:
        self.operators[operator.operator_id] = operator

    def put_dialog(self, dialog: DialogState) -> None:
        """Add or replace a dialog; a closed one leaves the board."""
        old = self.dialogs.get(dialog.dialog_id)
        if old is not None:
            self._count(old, -1)
        if dialog.state == "closed":
            self.dialogs.pop(dialog.dialog_id, None)
            if self.open_by_ref.get(dialog.ref) == dialog.dialog_id:
                del self.open_by_ref[dialog.ref]
            return
        self.dialogs[dialog.dialog_id] = dialog
        self.open_by_ref[dialog.ref] = dialog.dialog_id
        self._count(dialog, 1)

    def _count(self, dialog: DialogState, delta: int) -> None:
        for operator_id in dialog.holders:
            self._by_line[(operator_id, dialog.line_id, dialog.state)] += delta
            self._by_state[(operator_id, dialog.state)] += delta
            if delta > 0:
                self._held[operator_id][dialog.dialog_id] = None
            else:
                self._held[operator_id].pop(dialog.dialog_id, None)
        if dialog.offer_event_id is not None:
            if delta > 0:
                self.offers[dialog.offer_event_id] = dialog.dialog_id
            else:
                self.offers.pop(dialog.offer_event_id, None)
        if dialog.state == "waiting" and dialog.held is None:  # a held one is not queued
            waiting = self._waiting[dialog.line_id]
            key = (dialog.queued_at, dialog.dialog_id)
            if delta > 0:
                insort(waiting, key)
            else:
                del waiting[bisect_left(waiting, key)]

    def load(self, operator_id: str, states: tuple[str, ...], line_id: str | None) -> int:
        """Dialogs held by the operator in ``states``, on one line or (None) on all."""
        total = 0
        if line_id is None:
            by_state = self._by_state
            for state in states:
                total += by_state.get((operator_id, state), 0)
        else:
            by_line = self._by_line
            for state in states:
                total += by_line.get((operator_id, line_id, state), 0)
        return total

    def waiting_count(self, line_id: str) -> int:
        return len(self._waiting.get(line_id, ()))

    def waiting(self, line_id: str) -> list[DialogState]:
        """The line's waiting dialogs, longest in the queue first."""
        dialogs = self.dialogs
        return [dialogs[dialog_id] for _, dialog_id in self._waiting.get(line_id, ())]

    def waiting_ids(self, line_id: str) -> list[str]:
        """The ids of ``waiting``: a snapshot that routing walks while it changes the queue."""
        return [dialog_id for _, dialog_id in self._waiting.get(line_id, ())]

    def waiting_lines(self) -> list[str]:
        return [line for line, dialogs in self._waiting.items() if dialogs]

    def of_operator(self, operator_id: str) -> list[DialogState]:
        """Open dialogs the operator holds or is offered."""
        return [self.dialogs[d] for d in self._held.get(operator_id, {})]

    def with_dialog(self, dialog_id: str) -> DialogState | None:
        return self.dialogs.get(dialog_id)


_DIALOG_FIELDS = tuple(f.name for f in fields(DialogState))


def moved(dialog: DialogState, **changes: Any) -> DialogState:
    """A copy of ``dialog`` with ``changes`` (``dataclasses.replace`` without its per-call
    introspection: the router makes one or two per decision)."""
    return DialogState(
        *[changes.pop(n) if n in changes else getattr(dialog, n) for n in _DIALOG_FIELDS]
    )
