"""The outbox's interface: what portal mailboxes need from storage.

SQLite (``engine.store.sqlite_outbox``) is the embedded default. A shared PostgreSQL store for
clusters implements the same methods; mailboxes and actors never see which one they have.
All methods are synchronous and are called from one thread per store (see
``engine.store.threaded``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from engine.crm.identities import Identity
from engine.crm.linking import ContactLink
from engine.crm.records import Contact, Lead, LeadStatus
from engine.crm.sightings import LinkSettings
from engine.delivery.send_rates import BucketLevel
from engine.routing.plan import CustomerOwners, Plan
from engine.routing.state import Block, DialogState, OperatorState
from engine.stats.events import DialogEvent
from engine.store.records import (
    Arrange,
    Batch,
    BatchClaim,
    BatchWrite,
    DeadLetter,
    HistoryEvent,
    InboxRow,
    OutboxRecord,
    PendingEvent,
    PortalStartup,
    QuickAnswer,
    StoredReply,
    Written,
)
from engine.store.sqlite_stats import Cursor


class CrmStore(Protocol):
    """A portal's contacts, leads and history (``engine.store.sqlite_crm``, docs/crm.md).
    Each call is one transaction; ids that name a merged contact resolve to its survivor,
    ids of another portal are ``NotFoundError``."""

    def link(
        self,
        portal_id: str,
        rows: Sequence[InboxRow],
        settings: Mapping[str, LinkSettings],
        now: float,
    ) -> tuple[dict[str, ContactLink], list[str]]:
        """Link inbox rows' customers to contacts; each customer's link by conversation
        key, and why identities were passed over."""
        ...

    def resolve(self, portal_id: str, contact_id: str) -> str: ...

    def contact(self, portal_id: str, contact_id: str) -> Contact: ...

    def find(self, portal_id: str, identity: Identity) -> Contact | None: ...

    def create(
        self, portal_id: str, name: str | None, identities: Sequence[Identity], now: float
    ) -> Contact: ...

    def contact_of(self, portal_id: str, identity: Identity, now: float) -> str:
        """The contact holding ``identity``, made for it if none does."""
        ...

    def merge(
        self, portal_id: str, survivor_id: str, other_id: str, now: float
    ) -> tuple[Contact, str]:
        """The survivor after the merge, and the live id merged into it."""
        ...

    def set_lead_status(
        self, portal_id: str, lead_id: str, status: LeadStatus, now: float
    ) -> Lead: ...

    def history(
        self, portal_id: str, contact_id: str, limit: int, before: str | None
    ) -> tuple[str, list[HistoryEvent]]:
        """The live contact id and a page of its history, newest first."""
        ...


class OutboxStore(Protocol):
    @property
    def crm(self) -> CrmStore:
        """The CRM of the portals here, on the same file and transactions."""
        ...

    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]:
        """Customers' events into the inbox in one transaction; False for a duplicate."""
        ...

    # -- routing: the inbox, the dialogs' state and their streams ------------------------

    def inbox(self, portal_id: str, limit: int) -> list[InboxRow]:
        """Stored customer events not yet in their dialogs' streams, oldest first."""
        ...

    def inbox_payloads(self, portal_id: str, rowids: Sequence[int]) -> dict[int, bytes]:
        """The stored messages of these inbox rows, by row (what a line reads of them)."""
        ...

    def routing_context(
        self, portal_id: str, identities: Sequence[str], refs: Sequence[str]
    ) -> tuple[dict[str, CustomerOwners], dict[str, DialogState]]:
        """CRM owners of these customers, the latest dialog of these conversations."""
        ...

    def load_board(self, portal_id: str) -> tuple[list[DialogState], list[OperatorState], set[str]]:
        """Open dialogs, operators, and the ids of offers still waiting in the outbox."""
        ...

    def dialog(self, portal_id: str, dialog_id: str) -> DialogState | None: ...

    def blocked(self, portal_id: str) -> list[Block]:
        """Customer identities that open no dialogs (declined as spam with a block)."""
        ...

    def history(
        self, portal_id: str, dialog_id: str, limit: int, after_event_id: str | None
    ) -> list[HistoryEvent]:
        """The dialog's events in stream order, ``limit`` of them after an event id
        (``NotFoundError`` for an id that is not the dialog's)."""
        ...

    def last_customer_message(self, portal_id: str, dialog_id: str) -> tuple[float, bytes] | None:
        """When the customer last wrote in the dialog, and that message's payload."""
        ...

    def stats_dialogs(
        self, portal_id: str, start: float, end: float, after: Cursor | None, limit: int
    ) -> tuple[list[str], Cursor | None]:
        """A page of the dialogs with history in ``[start, end)`` (``sqlite_stats``)."""
        ...

    def stats_events(
        self, portal_id: str, dialog_ids: Sequence[str], end: float
    ) -> list[DialogEvent]:
        """The events statistics read of these dialogs before ``end``, from each one's first."""
        ...

    # -- quick answers ---------------------------------------------------------------------

    def quick_answers(self, portal_id: str, line_id: str) -> list[QuickAnswer]:
        """The line's quick answers, oldest first."""
        ...

    def quick_answer(self, portal_id: str, answer_id: str) -> QuickAnswer | None: ...

    def put_quick_answer(self, portal_id: str, answer: QuickAnswer) -> None:
        """Create or replace, durably (the portal is answered on it)."""
        ...

    def delete_quick_answer(self, portal_id: str, answer_id: str) -> bool:
        """False when there was none."""
        ...

    def startup(self, portal_ids: Sequence[str]) -> dict[str, PortalStartup]:
        """What each portal's mailbox, sender and router read when they start."""
        ...

    def customer_owners(self, portal_id: str, identity: str) -> CustomerOwners | None: ...

    def decisions(self, portal_id: str, dialog_id: str, limit: int) -> list[dict[str, object]]:
        """The dialog's routing decisions with their explanations, newest first."""
        ...

    def commit_plan(
        self,
        portal_id: str,
        plan: Plan,
        replies: Sequence[StoredReply],
        settled_reply_ids: Sequence[str],
        now: float,
        durable: bool,
    ) -> list[int]:
        """A routing step in one transaction; returns the stream hashes of its events."""
        ...

    def prune_decisions(self, older_than: float) -> int: ...

    # -- delivery ------------------------------------------------------------------------

    def pending(self, portal_id: str, stream: int, streams: int, limit: int) -> list[PendingEvent]:
        """Events of one stream not yet in a batch, in stream order."""
        ...

    def claim_batch(
        self,
        portal_id: str,
        batch_id: str,
        stream: int,
        rowids_in_order: Sequence[int],
        dialog_json_by_rowid: dict[int, bytes],
        now: float,
        all_best_effort: bool = False,
    ) -> Batch:
        """Make a batch of these events and fix each one's delivery kind for good.

        An event is best effort (may be dropped, never dead-lettered) when it was stored as
        such (typing) or ``all_best_effort`` (the portal's delivery is best effort now);
        it then gets no ``seq``. Every other event gets the portal's next sequence number,
        in the given order, with no gaps. ``dialog_json_by_rowid`` restamps events moved
        into another slot of their dialog.
        """
        ...

    def write_delivery(
        self,
        writes: Sequence[BatchWrite],
        claims: Sequence[BatchClaim],
        now: float,
        arrange: Arrange,
    ) -> tuple[list[Written], list[Batch | None]]:
        """A delivery round of many portals in one transaction: first every batch's
        ``BatchWrite`` (outcomes of attempts, attempts starting), then a batch claimed for
        each ready stream, its events put in order by ``arrange`` and numbered as
        ``claim_batch`` says, its first attempt counted. A claim finds ``None`` when the
        stream has nothing waiting. All of it commits, or none of it."""
        ...

    def open_batches(self, portal_id: str) -> list[Batch]:
        """Batches claimed but not yet acknowledged (after a restart: resend them first)."""
        ...

    def load_batch(self, batch_id: str) -> Batch | None: ...

    def start_attempt(self, batch_id: str, attempt: int) -> None:
        """Record that attempt number ``attempt`` starts, before its POST (so the count
        survives a killed process and a resent batch says a higher number)."""
        ...

    def schedule_retry(self, batch_id: str, next_attempt_at: float, error: str) -> None:
        """The attempt failed: the next one is due at ``next_attempt_at``."""
        ...

    def ack_batch(self, batch_id: str) -> list[str]:
        """The portal took the batch: its events leave the outbox; returns its offers' ids."""
        ...

    def drop_events(
        self, batch_id: str, rowids: Sequence[int], reason: str, now: float, dead_letter: bool
    ) -> list[str]:
        """Take events out of a batch: to dead letters, or gone (best effort); returns
        the ids of the offers among them."""
        ...

    def dead_letters(
        self, portal_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]: ...

    def dead_letter_count(self, portal_id: str) -> int: ...

    def depth(self, portal_id: str) -> int:
        """Events stored and not yet delivered."""
        ...

    def backlog(self, portal_id: str) -> tuple[int, int]:
        """(Messages stored and not yet routed, events routed and not yet delivered): the
        two parts of ``depth``."""
        ...

    def remember_request(
        self, portal_id: str, request_id: str, now: float, window_s: float
    ) -> bool:
        """False when this API request id was seen within the window (a replay)."""
        ...

    def replies(self, portal_id: str) -> list[StoredReply]:
        """Replies stored and not yet settled (after a restart: send them)."""
        ...

    def own_message_ids(
        self, portal_id: str, connector_id: str, message_ids: Sequence[str]
    ) -> set[str]:
        """Which of these channel message ids the engine sent itself through the connector
        (an echo of one is no ``sent_elsewhere``)."""
        ...

    def sending_dialogs(self, portal_id: str, dialog_ids: Sequence[str]) -> set[str]:
        """Which of these dialogs have a reply whose attempt started and is not settled:
        its message ids are not known yet."""
        ...

    def start_reply_attempt(self, reply_id: str, attempt: int, now: float, durable: bool) -> None:
        """Record that attempt number ``attempt`` starts, before the channel has the reply
        (``durable``: surviving a power cut too). Until ``schedule_reply_retry`` or the
        settlement clears it, ``attempt_started_at`` says that attempt's outcome is unknown."""
        ...

    def schedule_reply_retry(self, reply_id: str, next_attempt_at: float) -> None:
        """The attempt failed with a known outcome: the next one is due at ``next_attempt_at``."""
        ...

    def send_buckets(self, portal_id: str) -> list[BucketLevel]:
        """The portal's kept send buckets' levels (``engine.delivery.send_rates``)."""
        ...

    def save_send_buckets(self, portal_id: str, levels: Sequence[BucketLevel]) -> None:
        """Store kept send buckets' levels, replacing the old ones."""
        ...

    def prune_seen(self, older_than: float) -> int: ...

    def portal_ids(self) -> set[str]:
        """Portals with anything stored here."""
        ...

    def close(self) -> None: ...
