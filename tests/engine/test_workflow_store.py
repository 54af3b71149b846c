"""The operator workflow's part of the SQLite file, on a real file reopened: pins and
participants with their dialogs, blocked identities, the dialogs' history and quick
answers, each portal's own."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.errors import NotFoundError
from engine.events import DialogPinned, ReplySent
from engine.routing.plan import Plan
from engine.routing.state import Block
from engine.store.records import QuickAnswer
from engine.store.sqlite_outbox import SqliteOutbox
from tests.engine.test_outbox_store import (
    NOW,
    claim,
    commit,
    dialog_state,
    engine_event,
    moved_in,
    pending_rowids,
    record,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


def test_pins_and_participants_come_back_with_their_dialogs(path: Path) -> None:
    pinned = dialog_state(
        "dlg_d1",
        state="assigned",
        operator_id="op-a",
        pinned=True,
        participants=(("op-b", "invited"), ("boss", "supervisor")),
    )
    store = SqliteOutbox(path)
    commit(store, dialogs=[pinned])
    store.close()

    reopened = SqliteOutbox(path)
    try:
        (loaded,) = reopened.load_board("p1")[0]
        assert loaded == pinned
        assert reopened.startup(["p1"])["p1"].dialogs == [pinned]
    finally:
        reopened.close()


def test_blocks_survive_a_restart_per_portal_and_an_unblock_removes_them(path: Path) -> None:
    block = Block("tg-1/user-d1", "dlg_d1", NOW, "op-a", messages=3)
    store = SqliteOutbox(path)
    store.commit_plan("p1", Plan(blocks={block.identity: block}), [], [], NOW, False)
    store.close()

    store = SqliteOutbox(path)
    try:
        assert store.blocked("p1") == [block]
        assert store.startup(["p1", "p2"])["p1"].blocked == [block]
        assert store.blocked("p2") == []
        store.commit_plan("p1", Plan(blocks={block.identity: None}), [], [], NOW, False)
        assert store.blocked("p1") == []
    finally:
        store.close()


def test_the_history_keeps_what_joined_the_stream_after_delivery_in_order(path: Path) -> None:
    store = SqliteOutbox(path)
    store.append([record(1), record(2, best_effort=True), record(3)], NOW)
    first, typing, third = store.inbox("p1", 10)
    pinned = DialogPinned(operator_id="op-a", by=None)
    sent = ReplySent(
        reply_id="rpl_1", client_id=None, origin="operator", channel_message_ids=("9",)
    )
    commit(
        store,
        entries=[
            moved_in(first, b'{"at":1}'),
            moved_in(typing),
            engine_event("evt_pin", "d1", pinned, b'{"at":2}'),
            engine_event("evt_sent", "d1", sent, reply_json=b'{"content":"hi"}'),
            moved_in(third, deliver=False),
        ],
    )
    claim(store, "bat_1", pending_rowids(store))
    store.ack_batch("bat_1")  # delivered: the outbox forgets them, the history does not
    store.close()

    store = SqliteOutbox(path)
    try:
        page = store.history("p1", "dlg_d1", 2, None)
        rest = store.history("p1", "dlg_d1", 10, page[-1].event_id)
        events = page + rest
        assert [(e.event_id, e.kind, e.delivered) for e in events] == [
            ("evt_1", "message.received", True),
            ("evt_pin", "dialog.pinned", True),
            ("evt_sent", "reply.sent", True),
            ("evt_3", "message.received", False),
        ]  # the best-effort signal (typing) is not kept
        assert events[0].payload == b'{"n":1}' and events[0].dialog_json == b'{"at":1}'
        assert orjson.loads(events[1].payload) == {"operator_id": "op-a", "by": None}
        assert events[2].reply_json == b'{"content":"hi"}' and events[0].reply_json is None
        assert store.pending("p1", 0, 1, 10) == []
        assert store.history("p2", "dlg_d1", 10, None) == []
        with pytest.raises(NotFoundError, match="no event 'evt_x' in dialog 'dlg_d1'"):
            store.history("p1", "dlg_d1", 10, "evt_x")
        # the undelivered message is not what the customer last wrote to the portal
        assert store.last_customer_message("p1", "dlg_d1") == (NOW + 1, b'{"n":1}')
        assert store.last_customer_message("p1", "dlg_nope") is None
    finally:
        store.close()


def test_quick_answers_are_kept_per_portal_and_line(path: Path) -> None:
    store = SqliteOutbox(path)
    first = QuickAnswer("qa_1", "support", "Hello", "Hi {customer_name}!", NOW, NOW)
    second = QuickAnswer("qa_2", "support", "Bye", "Bye!", NOW + 1, NOW + 1)
    sales = QuickAnswer("qa_3", "sales", "Price", "It costs 5.", NOW, NOW)
    for answer in (second, first, sales):
        store.put_quick_answer("p1", answer)
    store.put_quick_answer("p2", QuickAnswer("qa_9", "support", "Other", "x", NOW, NOW))
    store.close()

    store = SqliteOutbox(path)
    try:
        assert store.quick_answers("p1", "support") == [first, second]
        assert store.quick_answer("p1", "qa_3") == sales
        assert store.quick_answer("p1", "qa_9") is None  # another portal's
        store.put_quick_answer("p1", QuickAnswer("qa_1", "support", "Hi", "Hi!", NOW, NOW + 5))
        assert store.quick_answer("p1", "qa_1").text == "Hi!"  # type: ignore[union-attr]
        assert store.delete_quick_answer("p1", "qa_1") is True
        assert store.delete_quick_answer("p1", "qa_1") is False
        assert store.delete_quick_answer("p1", "qa_9") is False
        assert store.quick_answers("p1", "support") == [second]
    finally:
        store.close()
