"""The delivery half of a portal actor's SQLite file: batches claimed from the streams, their
attempts, acknowledgements, retries and drops.

Each function works on the open connection inside a transaction the caller holds
(``engine.store.sqlite_outbox``), so a delivery round of many portals' streams — the
outcomes of every attempt that ended and the batches of every stream that is ready —
commits as one transaction: one thread hop and one commit instead of four per delivery.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.store.records import (
    Arrange,
    Batch,
    BatchClaim,
    BatchEvent,
    BatchWrite,
    EventDrop,
    PendingEvent,
    Written,
)

OFFER_KIND = "dialog.offered"

_BATCH_EVENT_COLUMNS = "rowid, event_id, seq, kind, received_at, best_effort, dialog_json, payload"


def pending(
    db: sqlite3.Connection, portal_id: str, stream: int, streams: int, limit: int
) -> list[PendingEvent]:
    """Events of one stream not yet in a batch, in stream order."""
    rows = db.execute(
        "SELECT rowid, event_id, kind, dialog_ref, order_key, received_at, best_effort,"
        " dialog_json FROM events WHERE portal_id = ? AND batch_id IS NULL"
        " AND stream_hash % ? = ? ORDER BY rowid LIMIT ?",
        (portal_id, streams, stream, limit),
    ).fetchall()
    return [PendingEvent(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in rows]


def claim(
    db: sqlite3.Connection,
    portal_id: str,
    batch_id: str,
    stream: int,
    rowids_in_order: Sequence[int],
    dialog_json_by_rowid: dict[int, bytes],
    now: float,
    all_best_effort: bool,
    attempts: int = 0,
    best_effort: dict[int, bool] | None = None,
) -> None:
    """Make a batch of these events, numbering the guaranteed ones (``OutboxStore``).

    ``best_effort`` is each event's stored kind when the caller has just read it."""
    row = db.execute("SELECT next_seq FROM sequences WHERE portal_id = ?", (portal_id,)).fetchone()
    next_seq = row[0] if row else 1
    if best_effort is None:
        best_effort = dict(
            db.execute(
                f"SELECT rowid, best_effort FROM events WHERE rowid IN"
                f" ({','.join('?' * len(rowids_in_order))})",
                tuple(rowids_in_order),
            ).fetchall()
        )
    updates = []
    for position, rowid in enumerate(rowids_in_order):
        dropped_if_failed = all_best_effort or bool(best_effort[rowid])
        seq = None
        if not dropped_if_failed:
            seq, next_seq = next_seq, next_seq + 1
        stamp = dialog_json_by_rowid.get(rowid)
        updates.append((batch_id, position, seq, int(dropped_if_failed), stamp, rowid))
    db.executemany(
        "UPDATE events SET batch_id = ?, batch_pos = ?, seq = ?, best_effort = ?,"
        " dialog_json = coalesce(?, dialog_json) WHERE rowid = ?",
        updates,
    )
    db.execute(
        "INSERT INTO sequences VALUES (?, ?) ON CONFLICT (portal_id)"
        " DO UPDATE SET next_seq = excluded.next_seq",
        (portal_id, next_seq),
    )
    db.execute(
        "INSERT INTO batches (batch_id, portal_id, stream, created_at, attempts,"
        " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
        (batch_id, portal_id, stream, now, attempts, now),
    )


def claim_ready(
    db: sqlite3.Connection, request: BatchClaim, now: float, arrange: Arrange
) -> Batch | None:
    """A batch of the stream's oldest events in delivery order, its first attempt counted;
    ``None`` when the stream has nothing waiting (its count was ahead of the store)."""
    events = pending(db, request.portal_id, request.stream, request.streams, request.limit)
    if not events:
        return None
    ordered = arrange(events)
    moved_stamps = {
        moved.rowid: moved.dialog_json
        for moved, original in zip(ordered, events, strict=True)
        if moved.rowid != original.rowid
    }
    claim(
        db,
        request.portal_id,
        request.batch_id,
        request.stream,
        [event.rowid for event in ordered],
        moved_stamps,
        now,
        request.all_best_effort,
        attempts=1,
        best_effort={event.rowid: event.best_effort for event in events},
    )
    return load_batch(db, request.batch_id)


def load_batch(db: sqlite3.Connection, batch_id: str) -> Batch | None:
    head = db.execute(
        "SELECT portal_id, stream, attempts, next_attempt_at FROM batches WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()
    if head is None:
        return None
    rows = db.execute(
        f"SELECT {_BATCH_EVENT_COLUMNS} FROM events WHERE batch_id = ? ORDER BY batch_pos",
        (batch_id,),
    ).fetchall()
    events = tuple(BatchEvent(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows)
    return Batch(batch_id, head[0], head[1], head[2], head[3], events)


def set_attempts(db: sqlite3.Connection, batch_id: str, attempts: int) -> None:
    db.execute("UPDATE batches SET attempts = ? WHERE batch_id = ?", (attempts, batch_id))


def schedule_retry(
    db: sqlite3.Connection, batch_id: str, next_attempt_at: float, error: str
) -> None:
    db.execute(
        "UPDATE batches SET next_attempt_at = ?, last_error = ? WHERE batch_id = ?",
        (next_attempt_at, error[:500], batch_id),
    )


def ack(db: sqlite3.Connection, batch_id: str) -> list[str]:
    """The portal took the batch: it leaves; returns the ids of the offers it carried."""
    offers = [
        row[0]
        for row in db.execute(
            "SELECT event_id FROM events WHERE batch_id = ? AND kind = ?", (batch_id, OFFER_KIND)
        )
    ]
    db.execute("DELETE FROM events WHERE batch_id = ?", (batch_id,))
    db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
    return offers


def drop(
    db: sqlite3.Connection,
    batch_id: str,
    rowids: Sequence[int],
    reason: str,
    now: float,
    dead_letter: bool,
) -> list[str]:
    """Events out of a batch, to dead letters or gone; returns the offers among them. A
    batch left empty is gone too."""
    marks = ",".join("?" * len(rowids))
    offers = [
        row[0]
        for row in db.execute(
            f"SELECT event_id FROM events WHERE rowid IN ({marks}) AND kind = ?",
            (*rowids, OFFER_KIND),
        )
    ]
    if dead_letter:
        db.execute(
            "INSERT INTO dead_letters (portal_id, event_id, seq, kind, received_at,"
            " dead_at, reason, dialog_json, payload)"
            " SELECT portal_id, event_id, seq, kind, received_at, ?, ?, dialog_json,"
            f" payload FROM events WHERE rowid IN ({marks}) ORDER BY batch_pos",
            (now, reason, *rowids),
        )
    db.execute(f"DELETE FROM events WHERE rowid IN ({marks})", tuple(rowids))
    left = db.execute("SELECT count(*) FROM events WHERE batch_id = ?", (batch_id,)).fetchone()[0]
    if left == 0:
        db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
    return offers


def write(db: sqlite3.Connection, change: BatchWrite, now: float) -> Written:
    """One batch's part of a delivery round, in the order ``BatchWrite`` documents."""
    offers: list[str] = []
    for event_drop in change.drops:
        offers += _drop(db, change.batch_id, event_drop, now)
    if change.attempts is not None:
        set_attempts(db, change.batch_id, change.attempts)
    if change.next_attempt_at is not None:
        schedule_retry(db, change.batch_id, change.next_attempt_at, change.error)
    if change.ack:
        offers += ack(db, change.batch_id)
    batch = load_batch(db, change.batch_id) if change.reload else None
    return Written(tuple(offers), batch)


def _drop(db: sqlite3.Connection, batch_id: str, event_drop: EventDrop, now: float) -> list[str]:
    if not event_drop.rowids:
        return []
    return drop(db, batch_id, event_drop.rowids, event_drop.reason, now, event_drop.dead_letter)
