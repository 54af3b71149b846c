"""The outbox's interface: what portal mailboxes need from storage.

SQLite (``engine.store.sqlite_outbox``) is the embedded default. A shared PostgreSQL store for
clusters implements the same methods; mailboxes and actors never see which one they have.
All methods are synchronous and are called from one thread per store (see
``engine.store.threaded``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.store.records import Batch, DeadLetter, OutboxRecord, PendingEvent, StoredReply


class OutboxStore(Protocol):
    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]:
        """Store records in one transaction; per record, False when it was a duplicate."""
        ...

    def pending(self, portal_id: str, stream: int, streams: int, limit: int) -> list[PendingEvent]:
        """Events of one stream not yet in a batch, oldest first."""
        ...

    def payloads(self, rowids: Sequence[int]) -> dict[int, bytes]:
        """The stored payloads of these events."""
        ...

    def pending_counts(self, portal_id: str, streams: int) -> list[int]:
        """How many events wait per stream (for a mailbox starting up)."""
        ...

    def claim_batch(
        self,
        portal_id: str,
        batch_id: str,
        stream: int,
        rowids_in_order: Sequence[int],
        dialog_json_by_rowid: dict[int, bytes],
        now: float,
    ) -> Batch:
        """Make a batch of these events, giving them per-portal sequence numbers in order."""
        ...

    def open_batches(self, portal_id: str) -> list[Batch]:
        """Batches claimed but not yet acknowledged (after a restart: resend them first)."""
        ...

    def load_batch(self, batch_id: str) -> Batch | None: ...

    def schedule_retry(self, batch_id: str, next_attempt_at: float, error: str) -> None: ...

    def ack_batch(self, batch_id: str) -> None:
        """The portal took the batch: its events leave the outbox."""
        ...

    def drop_events(
        self, batch_id: str, rowids: Sequence[int], reason: str, now: float, dead_letter: bool
    ) -> None:
        """Take events out of a batch: to dead letters, or gone (best effort)."""
        ...

    def dead_letters(
        self, portal_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]: ...

    def dead_letter_count(self, portal_id: str) -> int: ...

    def depth(self, portal_id: str) -> int:
        """Events stored and not yet delivered."""
        ...

    def remember_request(
        self, portal_id: str, request_id: str, now: float, window_s: float
    ) -> bool:
        """False when this API request id was seen within the window (a replay)."""
        ...

    def add_reply(self, reply: StoredReply) -> None: ...

    def replies(self, portal_id: str) -> list[StoredReply]: ...

    def settle_reply(self, reply_id: str, outcome: OutboxRecord, now: float) -> None:
        """Remove a settled reply and store its outcome event in the same transaction."""
        ...

    def schedule_reply_retry(self, reply_id: str, next_attempt_at: float) -> None: ...

    def prune_seen(self, older_than: float) -> int: ...

    def portal_ids(self) -> set[str]:
        """Portals with anything stored here."""
        ...

    def close(self) -> None: ...
