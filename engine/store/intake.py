"""A channel actor's own durable intake: where a webhook's messages are before its 2xx.

The acknowledgement path stays in one process (DESIGN.md, invariant 1): a channel actor
writes the records of every webhook waiting at that moment in one transaction
(``ThreadedStore`` group commit, no linger), answers the provider, and only then hands the
records to their portal actors in batches (``engine.handoff``). A record leaves the intake
once its portal actor has stored it in its inbox; until then a crash of either side loses
nothing: the intake is read again at start and handed off again, and the portal's inbox
de-duplicates on the channel's ids.

De-duplication here covers a provider's retry that reaches the same channel actor (the
custom connector's answer counts duplicates); a retry that reaches another actor is caught
by the portal's inbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.store.records import Conversation, OutboxRecord
from engine.store.sqlite_file import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS intake (
    rowid INTEGER PRIMARY KEY, destination TEXT NOT NULL,
    portal_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    line_id TEXT NOT NULL, connector_id TEXT NOT NULL, channel TEXT NOT NULL,
    dialog_key TEXT NOT NULL, customer_id TEXT NOT NULL, order_key INTEGER NOT NULL,
    received_at REAL NOT NULL, payload BLOB NOT NULL, dedup_key TEXT NOT NULL,
    best_effort INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS intake_seen (
    dedup_key TEXT PRIMARY KEY, seen_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS intake_seen_age ON intake_seen (seen_at);
CREATE INDEX IF NOT EXISTS intake_destination ON intake (destination, rowid);
CREATE TABLE IF NOT EXISTS poll_cursors (
    connector_id TEXT PRIMARY KEY, cursor TEXT, polled_at REAL NOT NULL) WITHOUT ROWID;
"""

_COLUMNS = (
    "destination, portal_id, event_id, kind, line_id, connector_id, channel, dialog_key,"
    " customer_id, order_key, received_at, payload, dedup_key, best_effort, address"
)
_ADDED_COLUMNS = {("intake", "address"): "TEXT NOT NULL DEFAULT ''"}
"""Added after the table was first created (per-dialog addressing): a file written before
gets it on open, its rows with none."""


@dataclass(frozen=True, slots=True)
class Addressed:
    """A record and the portal actor (by name) it goes to."""

    destination: str
    record: OutboxRecord


@dataclass(frozen=True, slots=True)
class IntakeRow:
    rowid: int
    destination: str
    record: OutboxRecord


class IntakeStore(SqliteFile):
    """One SQLite file per channel actor; used from its store thread only."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        super().__init__(path, SCHEMA, synchronous, _ADDED_COLUMNS)

    def append(self, records: Sequence[Addressed], now: float) -> list[IntakeRow | None]:
        """Store records in one durable transaction; each as kept (with its rowid), or
        None for one seen here before."""
        with self._transaction(durable=True) as db:
            return self._append(db, records, now)

    def append_polled(
        self, records: Sequence[Addressed], connector_id: str, cursor: str | None, now: float
    ) -> list[IntakeRow | None]:
        """What one poll fetched and the cursor after it, in one durable transaction: a
        crash keeps both or neither, so the next poll neither repeats nor skips an item."""
        with self._transaction(durable=True) as db:
            kept = self._append(db, records, now)
            db.execute(
                "INSERT OR REPLACE INTO poll_cursors VALUES (?, ?, ?)", (connector_id, cursor, now)
            )
        return kept

    def poll_cursor(self, connector_id: str) -> tuple[str | None, float] | None:
        """A connector's stored cursor and when it was last polled; None: never polled."""
        row = self._db.execute(
            "SELECT cursor, polled_at FROM poll_cursors WHERE connector_id = ?", (connector_id,)
        ).fetchone()
        return None if row is None else (row[0], float(row[1]))

    def _append(
        self, db: sqlite3.Connection, records: Sequence[Addressed], now: float
    ) -> list[IntakeRow | None]:
        kept: list[IntakeRow | None] = []
        for item in records:
            record = item.record
            cursor = db.execute(
                "INSERT OR IGNORE INTO intake_seen VALUES (?, ?)", (record.dedup_key, now)
            )
            if cursor.rowcount == 0:
                kept.append(None)
                continue
            cursor = db.execute(
                f"INSERT INTO intake ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _row(item),
            )
            rowid = cursor.lastrowid
            assert rowid is not None
            kept.append(IntakeRow(rowid, item.destination, record))
        return kept

    def destinations(self) -> list[str]:
        """Portal actors with records waiting."""
        return [row[0] for row in self._db.execute("SELECT DISTINCT destination FROM intake")]

    def pending_by_destination(
        self, destinations: Sequence[str], limit: int | None
    ) -> dict[str, list[IntakeRow]]:
        """For each destination, its oldest records not yet handed off (all: no limit)."""
        return {
            destination: [
                _intake_row(row)
                for row in self._db.execute(
                    f"SELECT rowid, {_COLUMNS} FROM intake WHERE destination = ?"
                    " ORDER BY rowid LIMIT ?",
                    (destination, -1 if limit is None else limit),
                )
            ]
            for destination in destinations
        }

    def forget(self, rowids: Sequence[int]) -> None:
        """These records are in their portal's inbox now."""
        if not rowids:
            return
        with self._transaction(durable=False) as db:
            db.executemany("DELETE FROM intake WHERE rowid = ?", [(r,) for r in rowids])

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM intake").fetchone()[0])

    def prune_seen(self, older_than: float) -> int:
        return self._db.execute("DELETE FROM intake_seen WHERE seen_at < ?", (older_than,)).rowcount


def _intake_row(r: tuple[object, ...]) -> IntakeRow:
    return IntakeRow(
        int(r[0]),  # type: ignore[call-overload]
        str(r[1]),
        OutboxRecord(
            portal_id=str(r[2]),
            event_id=str(r[3]),
            kind=str(r[4]),
            conversation=Conversation(
                str(r[5]), str(r[6]), str(r[7]), str(r[8]), str(r[9]), str(r[15])
            ),
            order_key=int(r[10]),  # type: ignore[call-overload]
            received_at=float(r[11]),  # type: ignore[arg-type]
            payload=bytes(r[12]),  # type: ignore[call-overload]
            dedup_key=str(r[13]),
            best_effort=bool(r[14]),
        ),
    )


def _row(item: Addressed) -> tuple[object, ...]:
    record = item.record
    conversation = record.conversation
    return (
        item.destination,
        record.portal_id,
        record.event_id,
        record.kind,
        conversation.line_id,
        conversation.connector_id,
        conversation.channel,
        conversation.dialog_key,
        conversation.customer_id,
        record.order_key,
        record.received_at,
        record.payload,
        record.dedup_key,
        int(record.best_effort),
        conversation.address,
    )
