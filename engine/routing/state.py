"""The routing state of one portal: its open dialogs and its operators.

Records are frozen; a change replaces a record through ``Board.put_dialog`` or
``Board.put_operator``, which keep the load index (who holds how many dialogs in which
state on which line) exact, so capacity checks never scan the dialogs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import orjson

from engine.events import DialogStateName, DialogView

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


@dataclass(frozen=True, slots=True)
class DialogState:
    """One dialog: its place in the lifecycle and the timestamps its timers derive from."""

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

    @property
    def ref(self) -> str:
        """The conversation this dialog belongs to (``engine.store.records.dialog_ref``)."""
        return f"{self.connector_id}\x00{self.dialog_key}"

    @property
    def identity(self) -> str:
        """The customer's identity for CRM ownership: connector and channel user id."""
        return f"{self.connector_id}/{self.customer_id}"

    @property
    def holders(self) -> tuple[str, ...]:
        """Operators whose load this dialog counts toward."""
        if self.state == "offered":
            return self.offered_to
        if self.operator_id is not None and self.state in ("assigned", "answered"):
            return (self.operator_id,)
        return ()

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
        }

    def view(self) -> DialogView:
        return DialogView(**self._view_fields())

    def view_json(self) -> bytes:
        """``view()`` as JSON, without building the model (every event is stamped)."""
        return orjson.dumps(self._view_fields())

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> DialogState:
        values: dict[str, Any] = orjson.loads(data)
        values["offered_to"] = tuple(values["offered_to"])
        values["tried"] = tuple(values["tried"])
        return cls(**values)


def operator_from_json(data: bytes) -> OperatorState:
    return OperatorState(**orjson.loads(data))


def operator_to_json(operator: OperatorState) -> bytes:
    return orjson.dumps(asdict(operator))


@dataclass
class Board:
    """A portal's open dialogs and operators, with an exact load index."""

    dialogs: dict[str, DialogState] = field(default_factory=dict)
    operators: dict[str, OperatorState] = field(default_factory=dict)
    open_by_ref: dict[str, str] = field(default_factory=dict)
    _load: defaultdict[str, defaultdict[tuple[str, str], int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    _waiting: defaultdict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    _held: defaultdict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    offers: dict[str, str] = field(default_factory=dict)
    """The event id of each open offer to its dialog's id."""

    def operator(self, operator_id: str) -> OperatorState:
        return self.operators.get(operator_id) or OperatorState(operator_id)

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
            counts = self._load[operator_id]
            key = (dialog.line_id, dialog.state)
            counts[key] += delta
            if counts[key] == 0:
                del counts[key]
            if delta > 0:
                self._held[operator_id][dialog.dialog_id] = None
            else:
                self._held[operator_id].pop(dialog.dialog_id, None)
        if dialog.offer_event_id is not None:
            if delta > 0:
                self.offers[dialog.offer_event_id] = dialog.dialog_id
            else:
                self.offers.pop(dialog.offer_event_id, None)
        waiting = self._waiting[dialog.line_id]
        if dialog.state == "waiting":
            if delta > 0:
                waiting[dialog.dialog_id] = None
            else:
                waiting.pop(dialog.dialog_id, None)

    def load(self, operator_id: str, states: tuple[str, ...], line_id: str | None) -> int:
        """Dialogs held by the operator in ``states``, on one line or (None) on all."""
        counts = self._load.get(operator_id)
        if not counts:
            return 0
        return sum(
            n
            for (line, state), n in counts.items()
            if state in states and (line_id is None or line == line_id)
        )

    def waiting(self, line_id: str) -> list[DialogState]:
        """The line's waiting dialogs (unordered)."""
        return [self.dialogs[d] for d in self._waiting.get(line_id, {})]

    def waiting_lines(self) -> list[str]:
        return [line for line, dialogs in self._waiting.items() if dialogs]

    def of_operator(self, operator_id: str) -> list[DialogState]:
        """Open dialogs the operator holds or is offered."""
        return [self.dialogs[d] for d in self._held.get(operator_id, {})]

    def with_dialog(self, dialog_id: str) -> DialogState | None:
        return self.dialogs.get(dialog_id)


def moved(dialog: DialogState, **changes: Any) -> DialogState:
    """A copy of ``dialog`` with ``changes`` (``dataclasses.replace`` with a short name)."""
    return replace(dialog, **changes)
