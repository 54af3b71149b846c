"""A routing step's outcome, committed in one transaction: state changes and their events.

The dispatcher changes the board in memory and writes down here everything the store must
make durable together: the dialogs and operators it changed, the events it put into the
dialogs' streams (in stream order, customer messages moving in from the inbox among them),
the decisions with their explanations, the customer records and blocks it touched and the
texts the line sends the customer. Every entry also joins its dialog's history, what the
history API pages through. If the commit fails, the owner reloads its board from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.buttons.keyboard import Keyboard
from engine.events import ReplyOrigin
from engine.models import Frozen
from engine.routing.state import Block, DialogState, OperatorState
from engine.store.records import Receipt, SentPart


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One event joining a dialog's stream and history, with the dialog as it stands there.

    ``inbox_rowid`` set: a customer's stored message moves from the inbox into the stream.
    Otherwise ``data`` is an engine-made event (``engine.events``). ``deliver`` False: the
    message of a blocked customer, kept in the history only. ``reply_json``: for a reply's
    outcome, the reply as it was sent, which the history shows beside the event.
    """

    event_id: str
    kind: str
    dialog_id: str
    dialog_ref: str
    dialog_json: bytes
    occurred_at: float
    data: Frozen | None = None
    inbox_rowid: int | None = None
    deliver: bool = True
    reply_json: bytes | None = None
    contact_id: str | None = None
    """The dialog's CRM contact there: the history is also the contact's (docs/crm.md)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Who was chosen for a dialog and why every other operator was not."""

    decision_id: str
    dialog_id: str
    line_id: str
    at: float
    rules_version: int
    action: str
    operator_ids: tuple[str, ...]
    path: str
    reason: str
    skipped: dict[str, str]

    def as_json(self) -> dict[str, object]:
        return {
            "decision_id": self.decision_id,
            "dialog_id": self.dialog_id,
            "line_id": self.line_id,
            "at": self.at,
            "rules_version": self.rules_version,
            "action": self.action,
            "operator_ids": list(self.operator_ids),
            "path": self.path,
            "reason": self.reason,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Notice:
    """A text the line sends the customer on its own (queue position, outside hours, its
    own messages) or its bot answers with, buttons and all."""

    reply_id: str
    dialog_id: str
    text: str
    keyboard: Keyboard | None = None
    origin: ReplyOrigin = "line"


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    """A customer's answer to the consent request, for their CRM contact (docs/crm.md)."""

    contact_id: str
    given: bool
    at: float
    dialog_id: str


@dataclass(frozen=True, slots=True)
class CustomerOwners:
    """CRM ownership of one customer: the responsible and the last operator, keyed by the
    contact (``DialogState.identity``); a new dialog also takes its contact and lead."""

    identity: str
    responsible_id: str | None
    last_operator_id: str | None
    contact_id: str | None = None
    lead_id: str | None = None
    consent: str = "unknown"
    """The contact's stored answer to consent requests: unknown, given or declined."""
    lines: frozenset[str] = frozenset()
    """Lines on which the customer had a dialog before (a greeting for first dialogs)."""


@dataclass
class Plan:
    dialogs: dict[str, DialogState] = field(default_factory=dict)
    operators: dict[str, OperatorState] = field(default_factory=dict)
    entries: list[StreamEntry] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    customers: dict[str, CustomerOwners] = field(default_factory=dict)
    blocks: dict[str, Block | None] = field(default_factory=dict)
    """Blocks set or changed, by identity; None: the identity was unblocked."""
    consents: dict[str, ConsentAnswer] = field(default_factory=dict)
    """Consent answers to store with their contacts, by contact id."""
    lines_seen: set[tuple[str, str]] = field(default_factory=set)
    """(customer identity, line) of every dialog opened: the line's first dialog is past."""
    opened: int = 0
    """Dialogs opened for new conversations (not reopened or moved to another line)."""
    sent_parts: list[SentPart] = field(default_factory=list)
    """Messages of replies just sent, whose receipts will name them."""
    receipts: list[Receipt] = field(default_factory=list)
    """Channels' reports on our messages, from channel events just routed."""
    dropped: list[int] = field(default_factory=list)
    """Inbox rows of channel events about a conversation without a dialog: deleted unseen
    (a channel event never opens a dialog, docs/channels/contract.md)."""

    def __bool__(self) -> bool:
        return bool(
            self.dialogs
            or self.operators
            or self.entries
            or self.decisions
            or self.notices
            or self.customers
            or self.blocks
            or self.consents
            or self.lines_seen
            or self.dropped
            or self.sent_parts
            or self.receipts
        )
