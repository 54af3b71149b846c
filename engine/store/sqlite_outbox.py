"""The embedded outbox: one SQLite file per portal actor, WAL, one transaction per group.

Durability: ``synchronous=FULL`` by default, so an acknowledged message survives a power cut,
not only a killed process (its commit syncs the WAL, ``engine.store.sqlite_file``).
Throughput comes from group commit: the caller hands in every record that arrived while the
previous commit ran (``engine.store.threaded``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.delivery.send_rates import BucketLevel
from engine.errors import NotFoundError
from engine.routing.plan import CustomerOwners, Plan
from engine.routing.state import Block, DialogState, OperatorState
from engine.stats.events import DialogEvent
from engine.store import sqlite_crm, sqlite_delivery, sqlite_routing, sqlite_sent, sqlite_stats
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
from engine.store.sqlite_crm import SqliteCrm
from engine.store.sqlite_delivery import OFFER_KIND
from engine.store.sqlite_file import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    portal_id TEXT NOT NULL, dedup_key TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (portal_id, dedup_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_age ON seen (seen_at);
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY,
    portal_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    dialog_ref TEXT NOT NULL, stream_hash INTEGER NOT NULL, order_key INTEGER NOT NULL,
    best_effort INTEGER NOT NULL, received_at REAL NOT NULL, payload BLOB NOT NULL,
    dialog_json BLOB NOT NULL, batch_id TEXT, batch_pos INTEGER, seq INTEGER);
CREATE INDEX IF NOT EXISTS events_pending ON events (portal_id, batch_id, rowid);
CREATE INDEX IF NOT EXISTS events_in_batch ON events (batch_id, batch_pos)
    WHERE batch_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, stream INTEGER NOT NULL,
    created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_error TEXT);
CREATE TABLE IF NOT EXISTS dead_letters (
    rowid INTEGER PRIMARY KEY, portal_id TEXT NOT NULL, event_id TEXT NOT NULL,
    seq INTEGER, kind TEXT NOT NULL, received_at REAL NOT NULL, dead_at REAL NOT NULL,
    reason TEXT NOT NULL, dialog_json BLOB, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_portal ON dead_letters (portal_id, rowid);
CREATE TABLE IF NOT EXISTS sequences (portal_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replies (
    reply_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, dialog_id TEXT NOT NULL,
    target_json BLOB NOT NULL, request_json BLOB NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    origin TEXT NOT NULL, attempt_started_at REAL);
CREATE TABLE IF NOT EXISTS send_buckets (
    portal_id TEXT NOT NULL, connector_id TEXT NOT NULL, name TEXT NOT NULL,
    tokens REAL NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (portal_id, connector_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_requests (
    portal_id TEXT NOT NULL, request_id TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (portal_id, request_id)) WITHOUT ROWID;
"""

_REPLY_COLUMNS = (
    "reply_id, portal_id, dialog_id, target_json, request_json, created_at, attempts,"
    " next_attempt_at, origin, attempt_started_at"
)
_ADDED_COLUMNS = {
    ("replies", "attempt_started_at"): "REAL",
    ("inbox", "address"): "TEXT NOT NULL DEFAULT ''",
}
"""Columns added after a table was first created: a file written before gets them on open."""


class SqliteOutbox(SqliteFile):
    """``OutboxStore`` on one SQLite file (``engine.store.sqlite_file``).

    Durable commits (the WAL synced, when ``synchronous`` is FULL, the default) for what a
    caller is answered on: an append (the channel actor's hand-off) and a stored reply (the
    portal's 202). Bookkeeping of delivery (claiming a batch, acknowledging it, retry times)
    is not synced: a power cut can only make it happen again (a batch resent with the same
    ids), never lose a message.
    """

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        super().__init__(
            path,
            SCHEMA + sqlite_routing.SCHEMA + sqlite_crm.SCHEMA + sqlite_sent.SCHEMA,
            synchronous,
            _ADDED_COLUMNS,
        )
        self.crm = SqliteCrm(self._db, self._transaction)
        """Contacts, leads and history of the portals here (``docs/crm.md``)."""

    # -- inbound ---------------------------------------------------------------------------

    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]:
        """Customers' events into the inbox, durably; per record, False for a duplicate."""
        accepted: list[bool] = []
        with self._transaction(durable=True) as db:
            for record in records:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                    (record.portal_id, record.dedup_key, now),
                )
                if cursor.rowcount == 0:
                    accepted.append(False)
                    continue
                db.execute(
                    "INSERT INTO inbox (portal_id, event_id, kind, dialog_ref, order_key,"
                    " best_effort, received_at, payload, line_id, connector_id, channel,"
                    " dialog_key, customer_id, address)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _inbox_row(record),
                )
                accepted.append(True)
        return accepted

    # -- routing -----------------------------------------------------------------------------

    def inbox(self, portal_id: str, limit: int) -> list[InboxRow]:
        """Stored customer events that have not joined their dialogs' streams, oldest first."""
        return sqlite_routing.inbox(self._db, portal_id, limit)

    def inbox_payloads(self, portal_id: str, rowids: Sequence[int]) -> dict[int, bytes]:
        return sqlite_routing.inbox_payloads(self._db, portal_id, rowids)

    def routing_context(
        self, portal_id: str, identities: Sequence[str], refs: Sequence[str]
    ) -> tuple[dict[str, CustomerOwners], dict[str, DialogState]]:
        """CRM owners of these customers and the latest dialog of these conversations."""
        return (
            sqlite_routing.customers(self._db, portal_id, identities),
            sqlite_routing.recent_dialogs(self._db, portal_id, refs),
        )

    def load_board(self, portal_id: str) -> tuple[list[DialogState], list[OperatorState], set[str]]:
        """Open dialogs, operators, and which open offers have not reached the portal yet."""
        dialogs = sqlite_routing.open_dialogs(self._db, portal_id)
        offer_ids = [d.offer_event_id for d in dialogs if d.offer_event_id is not None]
        return (
            dialogs,
            sqlite_routing.operators(self._db, portal_id),
            sqlite_routing.undelivered_event_ids(self._db, offer_ids),
        )

    def dialog(self, portal_id: str, dialog_id: str) -> DialogState | None:
        return sqlite_routing.dialog(self._db, portal_id, dialog_id)

    def blocked(self, portal_id: str) -> list[Block]:
        return sqlite_routing.blocked(self._db, portal_id)

    def history(
        self, portal_id: str, dialog_id: str, limit: int, after_event_id: str | None
    ) -> list[HistoryEvent]:
        return sqlite_routing.history(self._db, portal_id, dialog_id, limit, after_event_id)

    def last_customer_message(self, portal_id: str, dialog_id: str) -> tuple[float, bytes] | None:
        return sqlite_routing.last_customer_message(self._db, portal_id, dialog_id)

    def stats_dialogs(
        self,
        portal_id: str,
        start: float,
        end: float,
        after: sqlite_stats.Cursor | None,
        limit: int,
    ) -> tuple[list[str], sqlite_stats.Cursor | None]:
        return sqlite_stats.touched_dialogs(self._db, portal_id, start, end, after, limit)

    def stats_events(
        self, portal_id: str, dialog_ids: Sequence[str], end: float
    ) -> list[DialogEvent]:
        return sqlite_stats.dialog_events(self._db, portal_id, dialog_ids, end)

    def quick_answers(self, portal_id: str, line_id: str) -> list[QuickAnswer]:
        return sqlite_routing.quick_answers(self._db, portal_id, line_id)

    def quick_answer(self, portal_id: str, answer_id: str) -> QuickAnswer | None:
        return sqlite_routing.quick_answer(self._db, portal_id, answer_id)

    def put_quick_answer(self, portal_id: str, answer: QuickAnswer) -> None:
        with self._transaction(durable=True) as db:
            sqlite_routing.put_quick_answer(db, portal_id, answer)

    def delete_quick_answer(self, portal_id: str, answer_id: str) -> bool:
        with self._transaction(durable=True) as db:
            return sqlite_routing.delete_quick_answer(db, portal_id, answer_id)

    def startup(self, portal_ids: Sequence[str]) -> dict[str, PortalStartup]:
        """What each of these portals needs to start, in a few queries for all of them."""
        wanted = set(portal_ids)
        pending: dict[str, dict[int, int]] = {p: {} for p in wanted}
        for portal_id, stream_hash, count in self._db.execute(
            "SELECT portal_id, stream_hash, count(*) FROM events WHERE batch_id IS NULL"
            " GROUP BY portal_id, stream_hash"
        ):
            if portal_id in wanted:
                pending[portal_id][stream_hash] = count
        inbox: dict[str, int] = dict.fromkeys(wanted, 0)
        for portal_id, count in self._db.execute(
            "SELECT portal_id, count(*) FROM inbox GROUP BY portal_id"
        ):
            if portal_id in wanted:
                inbox[portal_id] = count
        batches: dict[str, list[Batch]] = {p: [] for p in wanted}
        for portal_id, batch_id in self._db.execute(
            "SELECT portal_id, batch_id FROM batches ORDER BY created_at, rowid"
        ):
            batch = self.load_batch(batch_id) if portal_id in wanted else None
            if batch is not None:
                batches[portal_id].append(batch)
        replies: dict[str, list[StoredReply]] = {p: [] for p in wanted}
        for row in self._db.execute(f"SELECT {_REPLY_COLUMNS} FROM replies ORDER BY rowid"):
            if row[1] in wanted:
                replies[row[1]].append(StoredReply(*row))
        dialogs, operators = sqlite_routing.open_boards(self._db, wanted)
        blocked = sqlite_routing.blocked_of(self._db, wanted)
        offers = frozenset(
            row[0]
            for row in self._db.execute("SELECT event_id FROM events WHERE kind = ?", (OFFER_KIND,))
        )
        buckets: dict[str, list[BucketLevel]] = {p: [] for p in wanted}
        for portal_id, *level in self._db.execute(
            "SELECT portal_id, connector_id, name, tokens, at FROM send_buckets"
        ):
            if portal_id in wanted:
                buckets[portal_id].append(BucketLevel(*level))
        return {
            p: PortalStartup(
                pending[p],
                inbox[p],
                batches[p],
                replies[p],
                dialogs.get(p, []),
                operators.get(p, []),
                offers,
                blocked.get(p, []),
                buckets[p],
            )
            for p in wanted
        }

    def customer_owners(self, portal_id: str, identity: str) -> CustomerOwners | None:
        return sqlite_routing.customer_owners(self._db, portal_id, identity)

    def decisions(self, portal_id: str, dialog_id: str, limit: int) -> list[dict[str, object]]:
        return sqlite_routing.decisions(self._db, portal_id, dialog_id, limit)

    def commit_plan(
        self,
        portal_id: str,
        plan: Plan,
        replies: Sequence[StoredReply],
        settled_reply_ids: Sequence[str],
        now: float,
        durable: bool,
    ) -> list[int]:
        """A routing step in one transaction; returns the stream hashes of its events.

        ``durable`` when a caller is answered on it (an operator's reply, 202).
        """
        with self._transaction(durable=durable) as db:
            hashes = sqlite_routing.write_plan(db, portal_id, plan, replies, now)
            db.executemany(
                "DELETE FROM replies WHERE reply_id = ?", [(r,) for r in settled_reply_ids]
            )
        return hashes

    def pending(self, portal_id: str, stream: int, streams: int, limit: int) -> list[PendingEvent]:
        return sqlite_delivery.pending(self._db, portal_id, stream, streams, limit)

    # -- batches ---------------------------------------------------------------------------

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
        """See ``OutboxStore.claim_batch``: the events' delivery kind is fixed here."""
        with self._transaction(durable=False) as db:
            sqlite_delivery.claim(
                db,
                portal_id,
                batch_id,
                stream,
                rowids_in_order,
                dialog_json_by_rowid,
                now,
                all_best_effort,
            )
        batch = self.load_batch(batch_id)
        assert batch is not None
        return batch

    def write_delivery(
        self,
        writes: Sequence[BatchWrite],
        claims: Sequence[BatchClaim],
        now: float,
        arrange: Arrange,
    ) -> tuple[list[Written], list[Batch | None]]:
        """A delivery round in one transaction (``OutboxStore.write_delivery``)."""
        with self._transaction(durable=False) as db:
            written = [sqlite_delivery.write(db, change, now) for change in writes]
            claimed = [sqlite_delivery.claim_ready(db, c, now, arrange) for c in claims]
        return written, claimed

    def load_batch(self, batch_id: str) -> Batch | None:
        return sqlite_delivery.load_batch(self._db, batch_id)

    def open_batches(self, portal_id: str) -> list[Batch]:
        ids = [
            row[0]
            for row in self._db.execute(
                "SELECT batch_id FROM batches WHERE portal_id = ? ORDER BY created_at, rowid",
                (portal_id,),
            )
        ]
        batches = [self.load_batch(batch_id) for batch_id in ids]
        return [batch for batch in batches if batch is not None]

    def start_attempt(self, batch_id: str, attempt: int) -> None:
        """Record that attempt number ``attempt`` starts, before its POST.

        Committed with NORMAL like the rest of delivery's bookkeeping: it survives a killed
        process; a power cut may lose the last count, and the number repeat once.
        """
        with self._transaction(durable=False) as db:
            sqlite_delivery.set_attempts(db, batch_id, attempt)

    def schedule_retry(self, batch_id: str, next_attempt_at: float, error: str) -> None:
        with self._transaction(durable=False) as db:
            sqlite_delivery.schedule_retry(db, batch_id, next_attempt_at, error)

    def ack_batch(self, batch_id: str) -> list[str]:
        """The portal took the batch; returns the ids of the offers it carried."""
        with self._transaction(durable=False) as db:
            return sqlite_delivery.ack(db, batch_id)

    def drop_events(
        self, batch_id: str, rowids: Sequence[int], reason: str, now: float, dead_letter: bool
    ) -> list[str]:
        """Events out of a batch, to dead letters or gone; returns the offers among them."""
        with self._transaction(durable=False) as db:
            return sqlite_delivery.drop(db, batch_id, rowids, reason, now, dead_letter)

    # -- dead letters and depth --------------------------------------------------------------

    def dead_letters(
        self, portal_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]:
        after_rowid = 0
        if after_event_id is not None:
            row = self._db.execute(
                "SELECT rowid FROM dead_letters WHERE portal_id = ? AND event_id = ?",
                (portal_id, after_event_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no dead letter {after_event_id!r} to page after")
            after_rowid = row[0]
        rows = self._db.execute(
            "SELECT event_id, seq, kind, received_at, dead_at, reason, dialog_json, payload"
            " FROM dead_letters WHERE portal_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (portal_id, after_rowid, limit),
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def dead_letter_count(self, portal_id: str) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM dead_letters WHERE portal_id = ?", (portal_id,)
            ).fetchone()[0]
        )

    def depth(self, portal_id: str) -> int:
        """Events stored for the portal and not delivered, the inbox's included."""
        return sum(self.backlog(portal_id))

    def backlog(self, portal_id: str) -> tuple[int, int]:
        """What waits for the portal: (messages not yet routed, events routed and not yet
        delivered)."""
        return self._count("inbox", portal_id), self._count("events", portal_id)

    def _count(self, table: str, portal_id: str) -> int:
        query = f"SELECT count(*) FROM {table} WHERE portal_id = ?"
        return int(self._db.execute(query, (portal_id,)).fetchone()[0])

    # -- portal API --------------------------------------------------------------------------

    def remember_request(
        self, portal_id: str, request_id: str, now: float, window_s: float
    ) -> bool:
        db = self._db
        db.execute("DELETE FROM api_requests WHERE seen_at < ?", (now - window_s,))
        cursor = db.execute(
            "INSERT OR IGNORE INTO api_requests VALUES (?, ?, ?)", (portal_id, request_id, now)
        )
        return cursor.rowcount == 1

    def replies(self, portal_id: str) -> list[StoredReply]:
        rows = self._db.execute(
            f"SELECT {_REPLY_COLUMNS} FROM replies WHERE portal_id = ? ORDER BY rowid",
            (portal_id,),
        ).fetchall()
        return [StoredReply(*row) for row in rows]

    def start_reply_attempt(self, reply_id: str, attempt: int, now: float, durable: bool) -> None:
        """Record that attempt number ``attempt`` starts, before the channel is called.

        ``durable`` for a channel whose sends are not safe to repeat: the record must be on
        disk before the provider can have the reply, or a power cut would let it go twice.
        """
        with self._transaction(durable=durable) as db:
            db.execute(
                "UPDATE replies SET attempts = ?, attempt_started_at = ? WHERE reply_id = ?",
                (attempt, now, reply_id),
            )

    def own_message_ids(
        self, portal_id: str, connector_id: str, message_ids: Sequence[str]
    ) -> set[str]:
        return sqlite_sent.own_message_ids(self._db, portal_id, connector_id, message_ids)

    def sending_dialogs(self, portal_id: str, dialog_ids: Sequence[str]) -> set[str]:
        return {
            dialog_id
            for dialog_id in dialog_ids
            if self._db.execute(
                "SELECT 1 FROM replies WHERE portal_id = ? AND dialog_id = ?"
                " AND attempt_started_at IS NOT NULL",
                (portal_id, dialog_id),
            ).fetchone()
        }

    def schedule_reply_retry(self, reply_id: str, next_attempt_at: float) -> None:
        """The attempt failed (its outcome is known): try again at ``next_attempt_at``."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE replies SET next_attempt_at = ?, attempt_started_at = NULL"
                " WHERE reply_id = ?",
                (next_attempt_at, reply_id),
            )

    def send_buckets(self, portal_id: str) -> list[BucketLevel]:
        rows = self._db.execute(
            "SELECT connector_id, name, tokens, at FROM send_buckets WHERE portal_id = ?",
            (portal_id,),
        ).fetchall()
        return [BucketLevel(*row) for row in rows]

    def save_send_buckets(self, portal_id: str, levels: Sequence[BucketLevel]) -> None:
        """Kept buckets' levels (docs/channels/contract.md, "Kept limits"); durable, since a
        level lost to a power cut would let a second window's worth of sends out."""
        with self._transaction(durable=True) as db:
            db.executemany(
                "INSERT OR REPLACE INTO send_buckets VALUES (?, ?, ?, ?, ?)",
                [(portal_id, lv.connector_id, lv.name, lv.tokens, lv.at) for lv in levels],
            )

    def prune_seen(self, older_than: float) -> int:
        return self._db.execute("DELETE FROM seen WHERE seen_at < ?", (older_than,)).rowcount

    def prune_decisions(self, older_than: float) -> int:
        return sqlite_routing.prune_decisions(self._db, older_than)

    def portal_ids(self) -> set[str]:
        found: set[str] = set()
        for table in ("events", "replies", "batches", "inbox", "dialogs"):
            found.update(
                row[0] for row in self._db.execute(f"SELECT DISTINCT portal_id FROM {table}")
            )
        return found


def _inbox_row(record: OutboxRecord) -> tuple[object, ...]:
    conversation = record.conversation
    return (
        record.portal_id,
        record.event_id,
        record.kind,
        record.dialog_ref,
        record.order_key,
        int(record.best_effort),
        record.received_at,
        record.payload,
        conversation.line_id,
        conversation.connector_id,
        conversation.channel,
        conversation.dialog_key,
        conversation.customer_id,
        conversation.address,
    )
