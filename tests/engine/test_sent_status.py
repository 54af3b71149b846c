"""Our sent messages' statuses as receipts report them (engine.store.sqlite_sent), on a real
SQLite database: forward only, by id or by watermark, per connector and chat."""

from __future__ import annotations

import sqlite3

import orjson

from engine.store.records import HistoryEvent, Receipt, SentPart
from engine.store.sqlite_sent import SCHEMA, with_delivery, write_receipts, write_sent


def database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    parts = [
        SentPart("rpl_1", 0, "vb", "u1", "101", 10.0),
        SentPart("rpl_1", 1, "vb", "u1", "102", 10.0),
        SentPart("rpl_2", 0, "vb", "u1", "103", 20.0),
        SentPart("rpl_3", 0, "vb", "u2", "104", 15.0),
    ]
    write_sent(db, "p1", parts, 30.0)
    return db


def receipt(status: str, *ids: str, watermark: float | None = None) -> Receipt:
    return Receipt("vb", "u1", status, ids, watermark, "why" if status == "failed" else None)


def statuses(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT channel_message_id, status FROM sent_messages ORDER BY 1")
    return dict(rows.fetchall())


def test_a_status_moves_forward_only_and_failed_overrides() -> None:
    db = database()
    write_receipts(db, "p1", [receipt("read", "101"), receipt("delivered", "101")], 31.0)
    write_receipts(db, "p1", [receipt("delivered", "102"), receipt("failed", "102")], 31.0)
    assert statuses(db) == {"101": "read", "102": "failed", "103": "sent", "104": "sent"}


def test_a_watermark_covers_the_chats_messages_sent_until_then() -> None:
    db = database()
    write_receipts(db, "p1", [receipt("delivered", watermark=15.0)], 31.0)
    assert statuses(db) == {"101": "delivered", "102": "delivered", "103": "sent", "104": "sent"}


def test_a_receipt_of_another_connector_or_unknown_id_changes_nothing() -> None:
    db = database()
    other = Receipt("tg", "u1", "read", ("101",), None, None)
    write_receipts(db, "p1", [other, receipt("read", "999")], 31.0)
    assert set(statuses(db).values()) == {"sent"}


def test_the_history_shows_each_sent_reply_with_its_parts_in_order() -> None:
    db = database()
    write_receipts(db, "p1", [receipt("failed", "102")], 31.0)
    sent = HistoryEvent("e1", "reply.sent", 10.0, True, b"{}", b'{"reply_id": "rpl_1"}', None)
    other = HistoryEvent("e2", "message.received", 11.0, True, b"{}", b"{}", None)
    shown = [event.as_json() for event in with_delivery(db, "p1", [sent, other])]
    parts = orjson.loads(orjson.dumps(shown[0]["delivery"]))
    assert [(p["channel_message_id"], p["status"], p["reason"]) for p in parts] == [
        ("101", "sent", None),
        ("102", "failed", "why"),
    ]
    assert shown[1]["delivery"] is None
