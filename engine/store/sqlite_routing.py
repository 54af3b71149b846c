"""The routing half of a portal actor's SQLite file: inbox, dialogs, operators, customers
(with the lines they had dialogs on and, for contacts, their consent), blocked identities,
the dialogs' history and the lines' quick answers.

It shares the outbox's connection and transactions (``engine.store.sqlite_outbox``): a
routing step's state changes, the events they produce and the customer messages moving
from the inbox into the stream commit together or not at all. Every event that joins a
stream is also written to the ``history`` of its dialog, which stays when the outbox has
delivered the event (docs/routing.md, "History").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from engine.errors import EngineError, NotFoundError
from engine.routing.plan import CustomerOwners, Plan, StreamEntry
from engine.routing.state import (
    Block,
    DialogState,
    OperatorState,
    operator_from_json,
    operator_to_json,
)
from engine.store.records import (
    Conversation,
    HistoryEvent,
    InboxRow,
    QuickAnswer,
    StoredReply,
    dialog_hash,
)
from engine.store.sqlite_sent import with_delivery, write_receipts, write_sent

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    rowid INTEGER PRIMARY KEY,
    portal_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    dialog_ref TEXT NOT NULL, order_key INTEGER NOT NULL, best_effort INTEGER NOT NULL,
    received_at REAL NOT NULL, payload BLOB NOT NULL, line_id TEXT NOT NULL,
    connector_id TEXT NOT NULL, channel TEXT NOT NULL, dialog_key TEXT NOT NULL,
    customer_id TEXT NOT NULL);
DROP INDEX IF EXISTS inbox_portal;
CREATE INDEX IF NOT EXISTS inbox_by_time ON inbox (portal_id, received_at, rowid);
CREATE TABLE IF NOT EXISTS dialogs (
    dialog_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, dialog_ref TEXT NOT NULL,
    closed INTEGER NOT NULL, updated_at REAL NOT NULL, state BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS dialogs_open ON dialogs (portal_id, closed);
CREATE INDEX IF NOT EXISTS dialogs_ref ON dialogs (portal_id, dialog_ref, updated_at);
CREATE TABLE IF NOT EXISTS operators (
    portal_id TEXT NOT NULL, operator_id TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (portal_id, operator_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customers (
    portal_id TEXT NOT NULL, identity TEXT NOT NULL, responsible_id TEXT,
    last_operator_id TEXT, PRIMARY KEY (portal_id, identity)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    rowid INTEGER PRIMARY KEY, portal_id TEXT NOT NULL, dialog_id TEXT NOT NULL,
    at REAL NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_dialog ON decisions (portal_id, dialog_id, rowid);
CREATE INDEX IF NOT EXISTS decisions_age ON decisions (at);
CREATE TABLE IF NOT EXISTS history (
    rowid INTEGER PRIMARY KEY, portal_id TEXT NOT NULL, dialog_id TEXT NOT NULL,
    event_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at REAL NOT NULL,
    dialog_json BLOB NOT NULL, payload BLOB NOT NULL, reply_json BLOB,
    delivered INTEGER NOT NULL, contact_id TEXT);
CREATE INDEX IF NOT EXISTS history_dialog ON history (portal_id, dialog_id, rowid);
CREATE INDEX IF NOT EXISTS history_contact ON history (portal_id, contact_id, rowid)
    WHERE contact_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS history_time ON history (portal_id, occurred_at);
CREATE TABLE IF NOT EXISTS blocked (
    portal_id TEXT NOT NULL, identity TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (portal_id, identity)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quick_answers (
    portal_id TEXT NOT NULL, answer_id TEXT NOT NULL, line_id TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (portal_id, answer_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quick_answers_line ON quick_answers (portal_id, line_id, created_at);
CREATE TABLE IF NOT EXISTS customer_lines (
    portal_id TEXT NOT NULL, identity TEXT NOT NULL, line_id TEXT NOT NULL,
    first_at REAL NOT NULL, PRIMARY KEY (portal_id, identity, line_id)) WITHOUT ROWID;
"""

_INSERT_EVENT = (
    "INSERT INTO events (portal_id, event_id, kind, dialog_ref, stream_hash, order_key,"
    " best_effort, received_at, payload, dialog_json) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?)"
)
_MOVE_FROM_INBOX = (
    "INSERT INTO events (portal_id, event_id, kind, dialog_ref, stream_hash, order_key,"
    " best_effort, received_at, payload, dialog_json) SELECT portal_id, event_id, kind,"
    " dialog_ref, ?, order_key, best_effort, received_at, payload, ? FROM inbox WHERE rowid = ?"
    " AND portal_id = ?"
)
_INSERT_HISTORY = (
    "INSERT INTO history (portal_id, dialog_id, event_id, kind, occurred_at, dialog_json,"
    " payload, reply_json, delivered, contact_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"
)
_HISTORY_FROM_INBOX = (
    "INSERT INTO history (portal_id, dialog_id, event_id, kind, occurred_at, dialog_json,"
    " payload, delivered, contact_id) SELECT portal_id, ?, event_id, kind, received_at, ?,"
    " payload, ?, ? FROM inbox WHERE rowid = ? AND portal_id = ? AND best_effort = 0"
)
"""A best-effort signal (typing) is delivered but not kept in the history."""


def inbox_payloads(
    db: sqlite3.Connection, portal_id: str, rowids: Sequence[int]
) -> dict[int, bytes]:
    """The stored messages of these inbox rows (what the line's own messages and its bot
    read), by row."""
    found: dict[int, bytes] = {}
    for rowid in rowids:
        row = db.execute(
            "SELECT payload FROM inbox WHERE rowid = ? AND portal_id = ?", (rowid, portal_id)
        ).fetchone()
        if row is not None:
            found[rowid] = bytes(row[0])
    return found


def inbox(db: sqlite3.Connection, portal_id: str, limit: int) -> list[InboxRow]:
    rows = db.execute(
        "SELECT rowid, event_id, kind, line_id, connector_id, channel, dialog_key, customer_id,"
        " order_key, received_at, address FROM inbox WHERE portal_id = ?"
        " ORDER BY received_at, rowid LIMIT ?",
        (portal_id, limit),
    ).fetchall()
    return [
        InboxRow(r[0], r[1], r[2], Conversation(r[3], r[4], r[5], r[6], r[7], r[10]), r[8], r[9])
        for r in rows
    ]


def customers(
    db: sqlite3.Connection, portal_id: str, identities: Sequence[str]
) -> dict[str, CustomerOwners]:
    """What routing knows of these customers (contact ids, else connector identities): their
    owners, the lines they had dialogs on, a contact's answer to consent requests."""
    found: dict[str, CustomerOwners] = {}
    for identity in identities:
        row = db.execute(
            "SELECT responsible_id, last_operator_id FROM customers"
            " WHERE portal_id = ? AND identity = ?",
            (portal_id, identity),
        ).fetchone()
        lines = frozenset(
            line_id
            for (line_id,) in db.execute(
                "SELECT line_id FROM customer_lines WHERE portal_id = ? AND identity = ?",
                (portal_id, identity),
            )
        )
        consent = db.execute(
            "SELECT given FROM crm_consents WHERE portal_id = ? AND contact_id = ?",
            (portal_id, identity),
        ).fetchone()
        if row is None and not lines and consent is None:
            continue
        responsible, last = row if row is not None else (None, None)
        status = "unknown" if consent is None else "given" if consent[0] else "declined"
        found[identity] = CustomerOwners(identity, responsible, last, consent=status, lines=lines)
    return found


def recent_dialogs(
    db: sqlite3.Connection, portal_id: str, refs: Sequence[str]
) -> dict[str, DialogState]:
    """The latest dialog of each conversation, open or closed."""
    found: dict[str, DialogState] = {}
    for ref in refs:
        row = db.execute(
            "SELECT state FROM dialogs WHERE portal_id = ? AND dialog_ref = ?"
            " ORDER BY updated_at DESC LIMIT 1",
            (portal_id, ref),
        ).fetchone()
        if row is not None:
            found[ref] = DialogState.from_json(row[0])
    return found


def dialog(db: sqlite3.Connection, portal_id: str, dialog_id: str) -> DialogState | None:
    row = db.execute(
        "SELECT state FROM dialogs WHERE portal_id = ? AND dialog_id = ?", (portal_id, dialog_id)
    ).fetchone()
    return None if row is None else DialogState.from_json(row[0])


def open_dialogs(db: sqlite3.Connection, portal_id: str) -> list[DialogState]:
    return [
        DialogState.from_json(row[0])
        for row in db.execute(
            "SELECT state FROM dialogs WHERE portal_id = ? AND closed = 0", (portal_id,)
        )
    ]


def blocked(db: sqlite3.Connection, portal_id: str) -> list[Block]:
    return [
        Block.from_json(row[0])
        for row in db.execute("SELECT state FROM blocked WHERE portal_id = ?", (portal_id,))
    ]


def blocked_of(db: sqlite3.Connection, portal_ids: set[str]) -> dict[str, list[Block]]:
    """Blocked identities of many portals, grouped by portal."""
    found: dict[str, list[Block]] = {}
    for portal_id, state in db.execute("SELECT portal_id, state FROM blocked"):
        if portal_id in portal_ids:
            found.setdefault(portal_id, []).append(Block.from_json(state))
    return found


def open_boards(
    db: sqlite3.Connection, portal_ids: set[str]
) -> tuple[dict[str, list[DialogState]], dict[str, list[OperatorState]]]:
    """Open dialogs and operators of many portals, grouped by portal."""
    dialogs: dict[str, list[DialogState]] = {}
    for portal_id, state in db.execute("SELECT portal_id, state FROM dialogs WHERE closed = 0"):
        if portal_id in portal_ids:
            dialogs.setdefault(portal_id, []).append(DialogState.from_json(state))
    operators: dict[str, list[OperatorState]] = {}
    for portal_id, state in db.execute("SELECT portal_id, state FROM operators"):
        if portal_id in portal_ids:
            operators.setdefault(portal_id, []).append(operator_from_json(state))
    return dialogs, operators


def operators(db: sqlite3.Connection, portal_id: str) -> list[OperatorState]:
    return [
        operator_from_json(row[0])
        for row in db.execute("SELECT state FROM operators WHERE portal_id = ?", (portal_id,))
    ]


def undelivered_event_ids(db: sqlite3.Connection, event_ids: Sequence[str]) -> set[str]:
    """Which of these events are still waiting in the outbox (not delivered or dropped)."""
    found: set[str] = set()
    for event_id in event_ids:
        if db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone():
            found.add(event_id)
    return found


def decisions(
    db: sqlite3.Connection, portal_id: str, dialog_id: str, limit: int
) -> list[dict[str, object]]:
    rows = db.execute(
        "SELECT body FROM decisions WHERE portal_id = ? AND dialog_id = ?"
        " ORDER BY rowid DESC LIMIT ?",
        (portal_id, dialog_id, limit),
    ).fetchall()
    return [orjson.loads(row[0]) for row in rows]


def write_plan(
    db: sqlite3.Connection,
    portal_id: str,
    plan: Plan,
    replies: Sequence[StoredReply],
    now: float,
) -> list[int]:
    """Everything a routing step changed, inside the caller's transaction.

    Returns the stream hash of every event that joined a stream, for the mailbox.
    """
    hashes = [
        stream_hash
        for entry in plan.entries
        if (stream_hash := _write_entry(db, portal_id, entry)) is not None
    ]
    db.executemany(
        "DELETE FROM inbox WHERE rowid = ? AND portal_id = ?",
        [(rowid, portal_id) for rowid in plan.dropped],
    )
    write_sent(db, portal_id, plan.sent_parts, now)
    write_receipts(db, portal_id, plan.receipts, now)
    db.executemany(
        "INSERT OR REPLACE INTO dialogs VALUES (?, ?, ?, ?, ?, ?)",
        [
            (d.dialog_id, portal_id, d.ref, int(d.state == "closed"), now, d.to_json())
            for d in plan.dialogs.values()
        ],
    )
    db.executemany(
        "INSERT OR REPLACE INTO operators VALUES (?, ?, ?)",
        [(portal_id, o.operator_id, operator_to_json(o)) for o in plan.operators.values()],
    )
    db.executemany(
        "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
        [
            (portal_id, c.identity, c.responsible_id, c.last_operator_id)
            for c in plan.customers.values()
        ],
    )
    db.executemany(
        "INSERT OR REPLACE INTO blocked VALUES (?, ?, ?)",
        [(portal_id, b.identity, b.to_json()) for b in plan.blocks.values() if b is not None],
    )
    db.executemany(
        "DELETE FROM blocked WHERE portal_id = ? AND identity = ?",
        [(portal_id, identity) for identity, b in plan.blocks.items() if b is None],
    )
    db.executemany(
        "INSERT OR IGNORE INTO customer_lines VALUES (?, ?, ?, ?)",
        [(portal_id, identity, line_id, now) for identity, line_id in sorted(plan.lines_seen)],
    )
    # A contact's answer to the consent request, with the contact (docs/crm.md).
    db.executemany(
        "INSERT OR REPLACE INTO crm_consents VALUES (?, ?, ?, ?, ?)",
        [
            (portal_id, c.contact_id, int(c.given), c.at, c.dialog_id)
            for c in plan.consents.values()
        ],
    )
    db.executemany(
        "INSERT INTO decisions (portal_id, dialog_id, at, body) VALUES (?, ?, ?, ?)",
        [(portal_id, d.dialog_id, d.at, orjson.dumps(d.as_json())) for d in plan.decisions],
    )
    db.executemany(
        "INSERT INTO replies (reply_id, portal_id, dialog_id, target_json, request_json,"
        " created_at, attempts, next_attempt_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.reply_id,
                r.portal_id,
                r.dialog_id,
                r.target_json,
                r.request_json,
                r.created_at,
                r.attempts,
                r.next_attempt_at,
                r.origin,
            )
            for r in replies
        ],
    )
    return hashes


def _write_entry(db: sqlite3.Connection, portal_id: str, entry: StreamEntry) -> int | None:
    """The entry into its stream (unless kept from delivery) and its dialog's history;
    returns the stream hash when it joined a stream."""
    stream_hash = dialog_hash(entry.dialog_ref)
    if entry.inbox_rowid is not None:
        row = (entry.inbox_rowid, portal_id)
        if entry.deliver:
            db.execute(_MOVE_FROM_INBOX, (stream_hash, entry.dialog_json, *row))
        db.execute(
            _HISTORY_FROM_INBOX,
            (entry.dialog_id, entry.dialog_json, int(entry.deliver), entry.contact_id, *row),
        )
        gone = db.execute("DELETE FROM inbox WHERE rowid = ? AND portal_id = ?", row)
        if gone.rowcount != 1:  # the plan ran ahead of the store: commit none of it
            raise EngineError(f"inbox row {entry.inbox_rowid} of portal {portal_id!r} is gone")
        return stream_hash if entry.deliver else None
    assert entry.data is not None
    payload = entry.data.model_dump_json().encode()
    db.execute(
        _INSERT_EVENT,
        (
            portal_id,
            entry.event_id,
            entry.kind,
            entry.dialog_ref,
            stream_hash,
            entry.occurred_at,
            payload,
            entry.dialog_json,
        ),
    )
    db.execute(
        _INSERT_HISTORY,
        (
            portal_id,
            entry.dialog_id,
            entry.event_id,
            entry.kind,
            entry.occurred_at,
            entry.dialog_json,
            payload,
            entry.reply_json,
            entry.contact_id,
        ),
    )
    return stream_hash


def history(
    db: sqlite3.Connection, portal_id: str, dialog_id: str, limit: int, after_event_id: str | None
) -> list[HistoryEvent]:
    """The dialog's events in the order they joined its stream, ``limit`` after an event."""
    after_rowid = 0
    if after_event_id is not None:
        row = db.execute(
            "SELECT rowid FROM history WHERE portal_id = ? AND dialog_id = ? AND event_id = ?",
            (portal_id, dialog_id, after_event_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no event {after_event_id!r} in dialog {dialog_id!r} to page after"
            )
        after_rowid = row[0]
    rows = db.execute(
        "SELECT event_id, kind, occurred_at, delivered, dialog_json, payload, reply_json"
        " FROM history WHERE portal_id = ? AND dialog_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
        (portal_id, dialog_id, after_rowid, limit),
    ).fetchall()
    events = [HistoryEvent(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]
    return with_delivery(db, portal_id, events)


def contact_history(
    db: sqlite3.Connection, portal_id: str, contact_id: str, limit: int, before_event_id: str | None
) -> list[HistoryEvent]:
    """The events of all the contact's dialogs (docs/crm.md, "History"), newest first,
    ``limit`` before an event: the dialogs' own history, stamped with the contact."""
    before_rowid = 1 << 62
    if before_event_id is not None:
        row = db.execute(
            "SELECT rowid FROM history WHERE portal_id = ? AND contact_id = ? AND event_id = ?",
            (portal_id, contact_id, before_event_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no event {before_event_id!r} in the history to page before")
        before_rowid = row[0]
    rows = db.execute(
        "SELECT event_id, kind, occurred_at, delivered, dialog_json, payload, reply_json"
        " FROM history WHERE portal_id = ? AND contact_id = ? AND rowid < ?"
        " ORDER BY rowid DESC LIMIT ?",
        (portal_id, contact_id, before_rowid, limit),
    ).fetchall()
    events = [HistoryEvent(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]
    return with_delivery(db, portal_id, events)


def last_customer_message(
    db: sqlite3.Connection, portal_id: str, dialog_id: str
) -> tuple[float, bytes] | None:
    """When the customer last wrote in the dialog, and that message's payload."""
    row = db.execute(
        "SELECT occurred_at, payload FROM history WHERE portal_id = ? AND dialog_id = ?"
        " AND kind = 'message.received' AND delivered = 1 ORDER BY rowid DESC LIMIT 1",
        (portal_id, dialog_id),
    ).fetchone()
    return None if row is None else (float(row[0]), bytes(row[1]))


def quick_answers(db: sqlite3.Connection, portal_id: str, line_id: str) -> list[QuickAnswer]:
    rows = db.execute(
        f"SELECT {_QUICK_ANSWER_COLUMNS} FROM quick_answers WHERE portal_id = ? AND line_id = ?"
        " ORDER BY created_at, answer_id",
        (portal_id, line_id),
    ).fetchall()
    return [QuickAnswer(*row) for row in rows]


def quick_answer(db: sqlite3.Connection, portal_id: str, answer_id: str) -> QuickAnswer | None:
    row = db.execute(
        f"SELECT {_QUICK_ANSWER_COLUMNS} FROM quick_answers WHERE portal_id = ? AND answer_id = ?",
        (portal_id, answer_id),
    ).fetchone()
    return None if row is None else QuickAnswer(*row)


def put_quick_answer(db: sqlite3.Connection, portal_id: str, answer: QuickAnswer) -> None:
    db.execute(
        "INSERT OR REPLACE INTO quick_answers (portal_id, answer_id, line_id, title, text,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            portal_id,
            answer.answer_id,
            answer.line_id,
            answer.title,
            answer.text,
            answer.created_at,
            answer.updated_at,
        ),
    )


def delete_quick_answer(db: sqlite3.Connection, portal_id: str, answer_id: str) -> bool:
    return (
        db.execute(
            "DELETE FROM quick_answers WHERE portal_id = ? AND answer_id = ?",
            (portal_id, answer_id),
        ).rowcount
        == 1
    )


_QUICK_ANSWER_COLUMNS = "answer_id, line_id, title, text, created_at, updated_at"


def customer_owners(db: sqlite3.Connection, portal_id: str, identity: str) -> CustomerOwners | None:
    return customers(db, portal_id, [identity]).get(identity)


def prune_decisions(db: sqlite3.Connection, older_than: float) -> int:
    return db.execute("DELETE FROM decisions WHERE at < ?", (older_than,)).rowcount
