"""Plain records that cross the store's boundary and Ray calls (the hand-off's packed:
``pack_records``)."""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, cast

import orjson

from engine.events import ReplyOrigin


def dialog_ref(connector_id: str, dialog_key: str) -> str:
    """A dialog's identity inside a portal before the router has given it an id."""
    return f"{connector_id}\x00{dialog_key}"


def dialog_hash(ref: str) -> int:
    """Stable across processes and restarts (unlike ``hash``): picks a dialog's stream."""
    return zlib.crc32(ref.encode())


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a customer's message belongs, what the router needs to open its dialog."""

    line_id: str
    connector_id: str
    channel: str
    dialog_key: str
    customer_id: str
    address: str = ""
    """What a reply in the conversation needs, as the channel said with the message (a JSON
    object of strings, ``InboundMessage.address``); empty: nothing beyond the dialog key."""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A customer's event to store for a portal, de-duplicated on ``dedup_key``.

    It is stored in the portal's inbox; the dialog's owner moves it into the dialog's stream
    (``engine.routing``) right after, stamping the dialog as it stands there.
    """

    portal_id: str
    event_id: str
    kind: str
    conversation: Conversation
    order_key: int
    received_at: float
    payload: bytes
    dedup_key: str
    best_effort: bool = False

    @property
    def dialog_ref(self) -> str:
        return dialog_ref(self.conversation.connector_id, self.conversation.dialog_key)


_RECORD_FIELDS = tuple(field.name for field in fields(OutboxRecord))
_CONVERSATION_AT = _RECORD_FIELDS.index("conversation")
_record_values = attrgetter(*_RECORD_FIELDS)
_conversation_values = attrgetter(*(field.name for field in fields(Conversation)))


def pack_records(records: Sequence[OutboxRecord]) -> bytes:
    """``records`` as one bytes object, for a call to another process (``unpack_records``).

    Ray serializes a list's items one at a time, each with a pickler of its own: handing
    over 55 records cost the channel actor 0.6 to 0.9 ms of CPU per call, against 0.05 ms
    for one bytes object; pickling the records' fields as plain tuples in one go takes
    0.35 µs a record (README, "The hand-off's records, packed").
    """
    rows = []
    for record in records:
        values = _record_values(record)
        conversation = _conversation_values(record.conversation)
        rows.append((*values[:_CONVERSATION_AT], conversation, *values[_CONVERSATION_AT + 1 :]))
    return pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_records(packed: bytes) -> list[OutboxRecord]:
    """What ``pack_records`` packed, from another of the engine's own processes."""
    at = _CONVERSATION_AT
    record = cast(Callable[..., OutboxRecord], OutboxRecord)  # fields in _RECORD_FIELDS order
    return [
        record(*row[:at], Conversation(*row[at]), *row[at + 1 :]) for row in pickle.loads(packed)
    ]


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A customer's stored message that has not joined its dialog's stream yet."""

    rowid: int
    event_id: str
    kind: str
    conversation: Conversation
    order_key: int
    received_at: float

    @property
    def dialog_ref(self) -> str:
        return dialog_ref(self.conversation.connector_id, self.conversation.dialog_key)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A stored event not yet in a batch."""

    rowid: int
    event_id: str
    kind: str
    dialog_ref: str
    order_key: int
    received_at: float
    best_effort: bool
    dialog_json: bytes


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """A stored event inside a claimed batch, with what the portal sees."""

    rowid: int
    event_id: str
    seq: int | None
    """Set when the event was claimed, for guaranteed events only."""
    kind: str
    received_at: float
    best_effort: bool
    """Fixed when the event was claimed: a best-effort event, or any on a best-effort portal."""
    dialog_json: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as it is attempted: its events in delivery order and its retry state."""

    batch_id: str
    portal_id: str
    stream: int
    attempts: int
    """Attempts started, counted before each POST (one cut short by a restart included)."""
    next_attempt_at: float
    events: tuple[BatchEvent, ...]

    @property
    def oldest_received_at(self) -> float:
        return min(event.received_at for event in self.events)


Arrange = Callable[[list["PendingEvent"]], list["PendingEvent"]]
"""Puts a stream's pending events in delivery order (``engine.delivery.ordering``); an event
moved into another slot carries that slot's dialog stamp."""


@dataclass(frozen=True, slots=True)
class BatchClaim:
    """A ready stream to form a batch from, in a delivery round: its oldest events, at most
    ``limit``, in delivery order, the first attempt counted."""

    portal_id: str
    batch_id: str
    stream: int
    streams: int
    limit: int
    all_best_effort: bool = False
    """The portal's delivery is best effort now: every event of the batch may be dropped."""


@dataclass(frozen=True, slots=True)
class EventDrop:
    """Events leaving a batch undelivered: to dead letters (``dead_letter``) or gone."""

    rowids: tuple[int, ...]
    reason: str
    dead_letter: bool


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """What a delivery round writes for one claimed batch, applied in this order: the drops,
    the attempts made (an attempt is counted before its POST), the time of the next attempt
    with the last error, the acknowledgement (the batch leaves)."""

    batch_id: str
    drops: tuple[EventDrop, ...] = ()
    attempts: int | None = None
    next_attempt_at: float | None = None
    error: str = ""
    ack: bool = False
    reload: bool = False
    """Return the batch as stored afterwards (``None`` once it is empty or gone)."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a ``BatchWrite`` did: the ids of offers among the events that left (delivered or
    given up on), and the batch afterwards when asked for."""

    offers: tuple[str, ...]
    batch: Batch | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str
    seq: int | None
    kind: str
    received_at: float
    dead_at: float
    reason: str
    dialog_json: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredReply:
    """An operator reply accepted from the portal and not yet settled."""

    reply_id: str
    portal_id: str
    dialog_id: str
    target_json: bytes
    request_json: bytes
    created_at: float
    attempts: int
    """Attempts started, counted before the channel is called."""
    next_attempt_at: float
    origin: ReplyOrigin = "operator"
    """operator: through the portal API; line: the line's own text; bot: the line's bot."""
    attempt_started_at: float | None = None
    """When the last attempt started, while its outcome is not known; ``None`` otherwise.
    Loaded with a time, the engine stopped while the channel had the reply."""


@dataclass(frozen=True, slots=True)
class PortalStartup:
    """What a portal's mailbox, reply sender and router read when they start, read for
    many portals at once (``startup``): starting 10,000 portals is then a few queries, not
    tens of thousands of store calls."""

    pending_by_hash: dict[int, int]
    """Events waiting to be batched, by stream hash (the mailbox reduces by its streams)."""
    inbox: int
    """Customers' messages stored and not yet routed: the router starts routing at once."""
    open_batches: list[Batch]
    replies: list[StoredReply]
    dialogs: list[Any]
    """The open ``DialogState`` records (typed in ``engine.routing.state``)."""
    operators: list[Any]
    undelivered_offers: frozenset[str]
    blocked: list[Any]
    """The ``Block`` records of identities that open no dialogs (``engine.routing.state``)."""
    send_buckets: list[Any]
    """The kept send buckets' ``BucketLevel`` (``engine.delivery.send_rates``)."""

    @classmethod
    def nothing(cls) -> PortalStartup:
        """What an idle portal's store holds (``idle``), with no operator or bucket."""
        return cls({}, 0, [], [], [], [], frozenset(), [], [])

    @property
    def idle(self) -> bool:
        """Nothing to deliver, route, send or time, no open dialog, no block, and no
        operator online or at work: the portal can wait unstarted until something comes
        for it (``MailboxHost``, "dormant")."""
        return not (
            self.pending_by_hash
            or self.inbox
            or self.open_batches
            or self.replies
            or self.dialogs
            or self.blocked
            or any(op.status != "offline" or op.working for op in self.operators)
        )


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One event of a dialog's history: as it joined the stream, kept after delivery."""

    event_id: str
    kind: str
    occurred_at: float
    delivered: bool
    """False for a blocked customer's message: stored, never delivered."""
    dialog_json: bytes
    payload: bytes
    reply_json: bytes | None
    """For a reply's outcome: the reply as it was sent (``ReplyRequest``)."""
    delivery_json: bytes | None = None
    """For ``reply.sent``: each message's status as the channel reported it."""

    def with_delivery(self, delivery_json: bytes) -> HistoryEvent:
        return HistoryEvent(
            self.event_id,
            self.kind,
            self.occurred_at,
            self.delivered,
            self.dialog_json,
            self.payload,
            self.reply_json,
            delivery_json,
        )

    def as_json(self) -> dict[str, object]:
        """As delivered (``docs/protocol.md``), with ``delivered`` and, for a reply's
        outcome, the reply as it was sent: one shape for a dialog's history and a
        contact's."""
        return {
            "id": self.event_id,
            "type": self.kind,
            "occurred_at": self.occurred_at,
            "delivered": self.delivered,
            "dialog": orjson.Fragment(self.dialog_json),
            "data": orjson.Fragment(self.payload),
            "reply": None if self.reply_json is None else orjson.Fragment(self.reply_json),
            "delivery": (
                None if self.delivery_json is None else orjson.Fragment(self.delivery_json)
            ),
        }


@dataclass(frozen=True, slots=True)
class QuickAnswer:
    """A canned reply of one open line, stored by the engine for the portal's operators."""

    answer_id: str
    line_id: str
    title: str
    text: str
    created_at: float
    updated_at: float

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.answer_id,
            "line_id": self.line_id,
            "title": self.title,
            "text": self.text,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class SentPart:
    """One message of a sent reply, by the id the channel gave it: what receipts name."""

    reply_id: str
    part: int
    connector_id: str
    dialog_key: str
    channel_message_id: str
    sent_at: float


@dataclass(frozen=True, slots=True)
class Receipt:
    """A channel's report on our messages: ``channel_message_ids``, or every message of the
    chat sent until ``watermark`` when it names none (docs/channels/contract.md)."""

    connector_id: str
    dialog_key: str
    status: str
    channel_message_ids: tuple[str, ...]
    watermark: float | None
    reason: str | None
