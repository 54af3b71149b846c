"""Each contact's conversation history: what the portal received of their dialogs, kept.

The outbox forgets an event once the portal acknowledged it, and a reply once it is
settled, so the history keeps its own copy (``docs/crm.md``, "History"): every event that
joins the stream of a dialog with a contact (the customer's messages as delivered, the
dialog's lifecycle, replies' outcomes) and every reply as stored (``reply``: the operator's
or the line's text). Rows are written in the routing step's own transaction, so the history
has exactly what the streams got; a merge moves rows to the survivor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from engine.crm.records import HistoryItem
from engine.errors import NotFoundError
from engine.routing.plan import StreamEntry
from engine.store.records import StoredReply

TABLE = "crm_history"
SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_history (
    rowid INTEGER PRIMARY KEY, portal_id TEXT NOT NULL, contact_id TEXT NOT NULL,
    dialog_id TEXT NOT NULL, item_id TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL,
    body BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS crm_history_item ON crm_history (portal_id, item_id);
CREATE INDEX IF NOT EXISTS crm_history_contact ON crm_history (portal_id, contact_id, rowid);
CREATE INDEX IF NOT EXISTS crm_history_dialog ON crm_history (portal_id, dialog_id);
"""

_FROM_INBOX = (
    "INSERT OR IGNORE INTO crm_history (portal_id, contact_id, dialog_id, item_id, kind, at,"
    " body) SELECT portal_id, ?, ?, event_id, kind, received_at, payload FROM inbox"
    " WHERE rowid = ? AND portal_id = ?"
)
_INSERT = (
    "INSERT OR IGNORE INTO crm_history (portal_id, contact_id, dialog_id, item_id, kind, at,"
    " body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def record(
    db: sqlite3.Connection,
    portal_id: str,
    entries: Sequence[StreamEntry],
    replies: Sequence[StoredReply],
) -> None:
    """Inside the routing step's transaction, before its inbox rows move into the streams.

    Which contact: the one the entry's dialog stamp names (the dialog as it stood there).
    ``INSERT OR IGNORE`` on the item id: a step repeated after a crash adds nothing twice.
    """
    for entry in entries:
        stamp: dict[str, Any] = orjson.loads(entry.dialog_json)
        contact_id = stamp.get("contact_id")
        if contact_id is None:
            continue
        if entry.inbox_rowid is not None:
            db.execute(_FROM_INBOX, (contact_id, stamp["id"], entry.inbox_rowid, portal_id))
        elif entry.data is not None:
            body = entry.data.model_dump_json().encode()
            db.execute(
                _INSERT,
                (
                    portal_id,
                    contact_id,
                    stamp["id"],
                    entry.event_id,
                    entry.kind,
                    entry.occurred_at,
                    body,
                ),
            )
    for reply in replies:
        row = db.execute(
            "SELECT contact_id FROM crm_history WHERE portal_id = ? AND dialog_id = ? LIMIT 1",
            (portal_id, reply.dialog_id),
        ).fetchone()
        if row is None:
            continue  # a dialog opened before contacts existed
        body = orjson.dumps(
            {
                "reply_id": reply.reply_id,
                "origin": reply.origin,
                "request": orjson.Fragment(reply.request_json),
            }
        )
        db.execute(
            _INSERT,
            (portal_id, row[0], reply.dialog_id, reply.reply_id, "reply", reply.created_at, body),
        )


def page(
    db: sqlite3.Connection, portal_id: str, contact_id: str, limit: int, before: str | None
) -> list[HistoryItem]:
    """Up to ``limit`` items of the contact's history, newest first, older than ``before``."""
    before_rowid = 1 << 62
    if before is not None:
        row = db.execute(
            "SELECT rowid FROM crm_history WHERE portal_id = ? AND item_id = ?",
            (portal_id, before),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no history item {before!r} to page before")
        before_rowid = row[0]
    rows = db.execute(
        "SELECT item_id, kind, dialog_id, at, body FROM crm_history"
        " WHERE portal_id = ? AND contact_id = ? AND rowid < ? ORDER BY rowid DESC LIMIT ?",
        (portal_id, contact_id, before_rowid, limit),
    ).fetchall()
    return [
        HistoryItem(id=r[0], type=r[1], dialog_id=r[2], at=r[3], data=orjson.loads(r[4]))
        for r in rows
    ]
