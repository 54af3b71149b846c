"""Our own sent messages and what the channel reported of them (docs/channels/contract.md,
"Receipts"): each message of a sent reply, by its channel id, with its status, ``sent``,
then ``delivered``, ``read`` or ``failed`` (with the provider's reason), never moving back.

Written in the routing step's transaction: a reply's parts when its ``reply.sent`` joins the
stream, a receipt when its ``channel.event`` does. Read with a dialog's or contact's
history, where each ``reply.sent`` shows its parts' statuses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from engine.store.records import HistoryEvent, Receipt, SentPart

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_messages (
    portal_id TEXT NOT NULL, connector_id TEXT NOT NULL, channel_message_id TEXT NOT NULL,
    reply_id TEXT NOT NULL, part INTEGER NOT NULL, dialog_key TEXT NOT NULL,
    sent_at REAL NOT NULL,
    status TEXT NOT NULL, reason TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (portal_id, connector_id, channel_message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_messages_reply ON sent_messages (portal_id, reply_id);
CREATE INDEX IF NOT EXISTS sent_messages_dialog
    ON sent_messages (portal_id, connector_id, dialog_key, sent_at);
"""

_RANK = "CASE status WHEN 'sent' THEN 0 WHEN 'delivered' THEN 1 WHEN 'read' THEN 2 ELSE 3 END"
STATUS_RANK = {"sent": 0, "delivered": 1, "read": 2, "failed": 3}
"""A status only moves forward: a late ``delivered`` does not undo ``read``; ``failed``
(Viber reports it even after accepting a send) overrides both."""


def write_sent(
    db: sqlite3.Connection, portal_id: str, parts: Sequence[SentPart], now: float
) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO sent_messages VALUES (?, ?, ?, ?, ?, ?, ?, 'sent', NULL, ?)",
        [
            (
                portal_id,
                p.connector_id,
                p.channel_message_id,
                p.reply_id,
                p.part,
                p.dialog_key,
                p.sent_at,
                now,
            )
            for p in parts
        ],
    )


def own_message_ids(
    db: sqlite3.Connection, portal_id: str, connector_id: str, message_ids: Sequence[str]
) -> set[str]:
    """Which of these channel message ids the engine sent itself through the connector."""
    return {
        message_id
        for message_id in message_ids
        if db.execute(
            "SELECT 1 FROM sent_messages WHERE portal_id = ? AND connector_id = ?"
            " AND channel_message_id = ?",
            (portal_id, connector_id, message_id),
        ).fetchone()
    }


def write_receipts(
    db: sqlite3.Connection, portal_id: str, receipts: Sequence[Receipt], now: float
) -> None:
    for receipt in receipts:
        rank = STATUS_RANK[receipt.status]
        values = (receipt.status, receipt.reason, now, portal_id, receipt.connector_id)
        if receipt.channel_message_ids:
            db.executemany(
                f"UPDATE sent_messages SET status = ?, reason = ?, updated_at = ?"
                f" WHERE portal_id = ? AND connector_id = ? AND channel_message_id = ?"
                f" AND {_RANK} < ?",
                [(*values, message_id, rank) for message_id in receipt.channel_message_ids],
            )
        elif receipt.watermark is not None:  # every message of the chat sent until then
            db.execute(
                f"UPDATE sent_messages SET status = ?, reason = ?, updated_at = ?"
                f" WHERE portal_id = ? AND connector_id = ? AND dialog_key = ?"
                f" AND sent_at <= ? AND {_RANK} < ?",
                (*values, receipt.dialog_key, receipt.watermark, rank),
            )


def with_delivery(
    db: sqlite3.Connection, portal_id: str, rows: Sequence[HistoryEvent]
) -> list[HistoryEvent]:
    """History events, each ``reply.sent`` with its messages' statuses."""
    reply_ids = {
        str(orjson.loads(row.payload)["reply_id"]): index
        for index, row in enumerate(rows)
        if row.kind == "reply.sent"
    }
    if not reply_ids:
        return list(rows)
    marks = ",".join("?" * len(reply_ids))
    found: dict[str, list[dict[str, object]]] = {}
    for reply_id, message_id, status, reason, at in db.execute(
        "SELECT reply_id, channel_message_id, status, reason, updated_at FROM sent_messages"
        f" WHERE portal_id = ? AND reply_id IN ({marks}) ORDER BY reply_id, part",
        (portal_id, *reply_ids),
    ):
        part = {"channel_message_id": message_id, "status": status, "reason": reason, "at": at}
        found.setdefault(reply_id, []).append(part)
    shown = list(rows)
    for reply_id, index in reply_ids.items():
        parts = found.get(reply_id)
        if parts is not None:
            shown[index] = shown[index].with_delivery(orjson.dumps(parts))
    return shown
