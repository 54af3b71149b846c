"""The SQLite outbox on a real file: the inbox, the dialogs' routing state and streams, batches
and replies in one file; and group commit through ``ThreadedStore``."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from engine.clock import ManualClock
from engine.errors import EngineError, NotFoundError
from engine.events import DialogOffered, DialogQueued, ReplySent, event_type
from engine.models import Frozen
from engine.routing.plan import CustomerOwners, Decision, Plan, StreamEntry
from engine.routing.state import DialogState, OperatorState
from engine.store.records import (
    Conversation,
    InboxRow,
    OutboxRecord,
    StoredReply,
    dialog_hash,
    dialog_ref,
)
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.threaded import ThreadedStore

NOW = 1_800_000_000.0
STAMP = b'{"id":"dlg"}'
"""The dialog as the router stamps it when an event joins the stream."""


def conversation(dialog: str) -> Conversation:
    return Conversation(
        line_id="support",
        connector_id="tg-1",
        channel="telegram",
        dialog_key=dialog,
        customer_id=f"user-{dialog}",
    )


def record(
    event_no: int,
    *,
    portal_id: str = "p1",
    dialog: str = "d1",
    dedup: str | None = None,
    best_effort: bool = False,
    kind: str = "message.received",
) -> OutboxRecord:
    return OutboxRecord(
        portal_id=portal_id,
        event_id=f"evt_{event_no}",
        kind=kind,
        conversation=conversation(dialog),
        order_key=event_no,
        received_at=NOW + event_no,
        payload=b'{"n":%d}' % event_no,
        dedup_key=dedup or f"tg-1\x00{event_no}",
        best_effort=best_effort,
    )


def moved_in(row: InboxRow, dialog_json: bytes = STAMP, **extra: Any) -> StreamEntry:
    """A customer's stored message joining its dialog's stream, as the router writes it
    (the dialog's id is ``dlg_`` and its chat)."""
    return StreamEntry(
        row.event_id,
        row.kind,
        f"dlg_{row.conversation.dialog_key}",
        row.dialog_ref,
        dialog_json,
        row.received_at,
        inbox_rowid=row.rowid,
        **extra,
    )


def engine_event(
    event_id: str, dialog: str, data: Frozen, dialog_json: bytes = STAMP, **extra: Any
) -> StreamEntry:
    """An event the router makes (``engine.events``) joining a dialog's stream."""
    return StreamEntry(
        event_id,
        event_type(data),
        f"dlg_{dialog}",
        dialog_ref("tg-1", dialog),
        dialog_json,
        NOW,
        data,
        **extra,
    )


def dialog_state(dialog_id: str, dialog: str = "d1", **changes: Any) -> DialogState:
    conv = conversation(dialog)
    return DialogState(
        dialog_id=dialog_id,
        line_id=conv.line_id,
        connector_id=conv.connector_id,
        channel=conv.channel,
        dialog_key=conv.dialog_key,
        customer_id=conv.customer_id,
        opened_at=NOW,
        **changes,
    )


def offer(operator_id: str) -> DialogOffered:
    return DialogOffered(operator_ids=(operator_id,), accept_timeout_s=60.0, decision_id="dec_1")


def commit(
    store: SqliteOutbox,
    portal_id: str = "p1",
    *,
    entries: Iterable[StreamEntry] = (),
    dialogs: Iterable[DialogState] = (),
    operators: Iterable[OperatorState] = (),
    decisions: Iterable[Decision] = (),
    customers: Iterable[CustomerOwners] = (),
    replies: Sequence[StoredReply] = (),
    settled: Sequence[str] = (),
    now: float = NOW,
    durable: bool = False,
) -> list[int]:
    """One routing step's plan, committed as the router commits it."""
    plan = Plan(
        dialogs={d.dialog_id: d for d in dialogs},
        operators={o.operator_id: o for o in operators},
        entries=list(entries),
        decisions=list(decisions),
        customers={c.identity: c for c in customers},
    )
    return store.commit_plan(portal_id, plan, replies, settled, now, durable)


def stored(store: SqliteOutbox, records: Sequence[OutboxRecord]) -> list[bool]:
    """Append ``records``, then move the inbox into the streams as the router does next."""
    accepted = store.append(records, NOW)
    for portal_id in sorted({r.portal_id for r in records}):
        commit(store, portal_id, entries=[moved_in(row) for row in store.inbox(portal_id, 1000)])
    return accepted


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def outbox(path: Path) -> Iterator[SqliteOutbox]:
    store = SqliteOutbox(path)
    try:
        yield store
    finally:
        store.close()


def claim(store: SqliteOutbox, batch_id: str, rowids: Sequence[int], stream: int = 0) -> None:
    store.claim_batch("p1", batch_id, stream, rowids, {}, NOW)


def pending_rowids(store: SqliteOutbox, portal_id: str = "p1") -> list[int]:
    return [p.rowid for p in store.pending(portal_id, 0, 1, 100)]


def test_wal_mode_and_commits_that_survive_a_killed_process(
    outbox: SqliteOutbox, path: Path
) -> None:
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_only_what_a_caller_is_answered_on_syncs_the_wal(outbox: SqliteOutbox) -> None:
    """A power cut keeps what a caller heard was stored (docs: engine.store.sqlite_file)."""

    def synced(step: Any) -> bool:
        with mock.patch.object(os, "fdatasync", wraps=os.fdatasync) as fdatasync:
            step()
        files = {os.readlink(f"/proc/self/fd/{call.args[0]}") for call in fdatasync.call_args_list}
        assert files <= {f"{outbox.path}-wal"}, files  # the WAL, where the commit is
        return bool(files)

    # the portal hears 202 on it
    assert synced(lambda: commit(outbox, replies=[reply("rpl_1")], durable=True))
    # bookkeeping: a power cut only repeats it
    assert not synced(lambda: commit(outbox, settled=["rpl_1"]))
    assert synced(lambda: outbox.append([record(1)], NOW))  # the provider hears 2xx on it


# -- the inbox ------------------------------------------------------------------------------


def test_duplicate_dedup_keys_are_refused_even_within_one_call(outbox: SqliteOutbox) -> None:
    first = record(1)
    assert outbox.append([first, record(2), replace(first, event_id="evt_again")], NOW) == [
        True,
        True,
        False,
    ]
    assert outbox.append([record(1), record(3)], NOW) == [False, True]
    assert [row.event_id for row in outbox.inbox("p1", 10)] == ["evt_1", "evt_2", "evt_3"]
    assert outbox.depth("p1") == 3


def test_dedup_is_per_portal(outbox: SqliteOutbox) -> None:
    outbox.append([record(1)], NOW)
    assert outbox.append([record(1, portal_id="p2")], NOW) == [True]
    assert outbox.append([record(1), record(1, portal_id="p2")], NOW) == [False, False]


def test_a_moved_message_is_still_a_duplicate(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(1)])
    assert outbox.append([record(1)], NOW) == [False]
    assert outbox.inbox("p1", 10) == []


def test_pruned_dedup_keys_are_accepted_again(outbox: SqliteOutbox) -> None:
    outbox.append([record(1)], NOW)
    outbox.append([record(2)], NOW + 100)
    assert outbox.prune_seen(older_than=NOW + 50) == 1
    assert outbox.append([record(1), record(2)], NOW + 200) == [True, False]


def test_the_inbox_holds_a_portals_messages_oldest_first(outbox: SqliteOutbox) -> None:
    outbox.append([record(3, dialog="d2"), record(1), record(2, portal_id="p2"), record(4)], NOW)
    rows = outbox.inbox("p1", limit=10)
    # Oldest received first, whatever order they were stored in: channel actors hand over
    # in parallel, and routing releases what every one of them has handed over.
    assert [row.event_id for row in rows] == ["evt_1", "evt_3", "evt_4"]
    assert [row.received_at for row in rows] == [NOW + 1, NOW + 3, NOW + 4]
    third = rows[1]
    assert third.conversation == conversation("d2")
    assert third.dialog_ref == dialog_ref("tg-1", "d2")
    assert (third.kind, third.order_key, third.received_at) == ("message.received", 3, NOW + 3)
    assert [row.event_id for row in outbox.inbox("p1", limit=2)] == ["evt_1", "evt_3"]
    assert [row.event_id for row in outbox.inbox("p2", limit=10)] == ["evt_2"]
    assert outbox.pending("p1", 0, 1, 10) == []  # not in a dialog's stream yet
    assert outbox.depth("p1") == 3
    assert outbox.portal_ids() == {"p1", "p2"}


def test_a_failed_append_stores_nothing(outbox: SqliteOutbox) -> None:
    broken = replace(record(2), payload=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        outbox.append([record(1), broken], NOW)
    assert outbox.depth("p1") == 0
    assert outbox.inbox("p1", 10) == []
    assert outbox.append([record(1)], NOW) == [True]  # its dedup key was rolled back too


# -- routing steps: commit_plan ----------------------------------------------------------------


def test_a_plan_moves_inbox_rows_into_streams_in_its_order_with_its_stamps(
    outbox: SqliteOutbox,
) -> None:
    outbox.append([record(1), record(2), record(3, dialog="d2", best_effort=True)], NOW)
    first, second, other = outbox.inbox("p1", 10)
    queued = DialogQueued(reason="new", position=1)
    hashes = commit(
        outbox,
        entries=[
            engine_event("evt_queued", "d1", queued, b'{"at":"queued"}'),
            moved_in(second, b'{"at":2}'),
            moved_in(first, b'{"at":1}'),
            moved_in(other, b'{"at":3}'),
        ],
    )
    d1, d2 = dialog_hash(dialog_ref("tg-1", "d1")), dialog_hash(dialog_ref("tg-1", "d2"))
    assert hashes == [d1, d1, d1, d2]
    assert outbox.inbox("p1", 10) == []

    pending = outbox.pending("p1", 0, 1, 10)
    assert [(p.event_id, p.kind, p.dialog_json) for p in pending] == [
        ("evt_queued", "dialog.queued", b'{"at":"queued"}'),
        ("evt_2", "message.received", b'{"at":2}'),
        ("evt_1", "message.received", b'{"at":1}'),
        ("evt_3", "message.received", b'{"at":3}'),
    ]
    assert [(p.order_key, p.received_at, p.best_effort) for p in pending] == [
        (0, NOW, False),
        (2, NOW + 2, False),
        (1, NOW + 1, False),
        (3, NOW + 3, True),
    ]
    assert [p.dialog_ref for p in pending] == [dialog_ref("tg-1", "d1")] * 3 + [
        dialog_ref("tg-1", "d2")
    ]
    batch = outbox.claim_batch("p1", "bat_1", 0, [p.rowid for p in pending], {}, NOW)
    assert [e.payload for e in batch.events] == [
        queued.model_dump_json().encode(),
        b'{"n":2}',
        b'{"n":1}',
        b'{"n":3}',
    ]
    assert outbox.depth("p1") == 4


def test_a_plan_stores_the_routing_state_it_changed(outbox: SqliteOutbox) -> None:
    waiting = dialog_state("dlg_1", tried=("op-b",), told_position=2)
    operator = OperatorState("op-a", "online", True, NOW - 5, NOW - 60)
    owners = CustomerOwners("tg-1/user-d1", "op-r", "op-a")
    commit(outbox, dialogs=[waiting], operators=[operator], customers=[owners])
    assert outbox.dialog("p1", "dlg_1") == waiting
    assert outbox.load_board("p1") == ([waiting], [operator], set())
    assert outbox.customer_owners("p1", "tg-1/user-d1") == owners

    assigned = replace(waiting, state="assigned", operator_id="op-a", assigned_at=NOW)
    commit(outbox, dialogs=[assigned], now=NOW + 1)  # a later step replaces the record
    assert outbox.dialog("p1", "dlg_1") == assigned
    assert outbox.load_board("p1")[0] == [assigned]


def test_a_failing_plan_leaves_inbox_streams_and_state_unchanged(outbox: SqliteOutbox) -> None:
    outbox.append([record(1), record(2)], NOW)
    commit(outbox, replies=[reply("rpl_1")])
    before = outbox.inbox("p1", 10)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: replies"):
        commit(
            outbox,
            entries=[
                engine_event("evt_queued", "d1", DialogQueued(reason="new", position=1)),
                moved_in(before[0]),
            ],
            dialogs=[dialog_state("dlg_1")],
            operators=[OperatorState("op-a", "online")],
            decisions=[decision(1)],
            replies=[reply("rpl_2"), reply("rpl_1")],  # the last write fails: stored already
        )
    assert outbox.inbox("p1", 10) == before
    assert outbox.pending("p1", 0, 1, 10) == []
    assert outbox.load_board("p1") == ([], [], set())
    assert outbox.dialog("p1", "dlg_1") is None
    assert outbox.decisions("p1", "dlg_1", 10) == []
    assert [r.reply_id for r in outbox.replies("p1")] == ["rpl_1"]
    assert outbox.depth("p1") == 2


def test_a_plan_naming_an_inbox_row_that_is_gone_commits_nothing(outbox: SqliteOutbox) -> None:
    """The board ran ahead of the store: nothing of the step may commit (no dialog opened
    for a message that never joins its stream), so the router reloads from the store."""
    outbox.append([record(1), record(2, portal_id="p2")], NOW)
    (row,) = outbox.inbox("p1", 10)
    (elsewhere,) = outbox.inbox("p2", 10)
    gone = replace(row, rowid=row.rowid + 100, event_id="evt_gone")
    with pytest.raises(EngineError, match=rf"inbox row {row.rowid + 100} of portal 'p1' is gone"):
        commit(outbox, entries=[moved_in(row), moved_in(gone)], dialogs=[dialog_state("dlg_1")])
    with pytest.raises(EngineError, match=rf"inbox row {elsewhere.rowid} of portal 'p1' is gone"):
        commit(outbox, entries=[moved_in(elsewhere)])  # another portal's message
    assert outbox.inbox("p1", 10) == [row]
    assert outbox.inbox("p2", 10) == [elsewhere]
    assert outbox.pending("p1", 0, 1, 10) == []
    assert outbox.pending("p2", 0, 1, 10) == []
    assert outbox.dialog("p1", "dlg_1") is None


# -- reading the routing state -------------------------------------------------------------------


def test_load_board_has_open_dialogs_operators_and_offers_not_yet_delivered(
    outbox: SqliteOutbox,
) -> None:
    offered_a = dialog_state(
        "dlg_a", "d1", state="offered", offered_to=("op-a",), offer_event_id="evt_offer_a"
    )
    offered_b = dialog_state(
        "dlg_b", "d2", state="offered", offered_to=("op-b",), offer_event_id="evt_offer_b"
    )
    closed = dialog_state("dlg_c", "d3", state="closed", closed_reason="finished")
    operators = [OperatorState("op-a", "online"), OperatorState("op-b", "away", True, NOW)]
    commit(
        outbox,
        entries=[
            engine_event("evt_offer_a", "d1", offer("op-a")),
            engine_event("evt_offer_b", "d2", offer("op-b")),
        ],
        dialogs=[offered_a, offered_b, closed],
        operators=operators,
    )
    _, offer_b_rowid = pending_rowids(outbox)
    claim(outbox, "bat_1", [offer_b_rowid])
    assert outbox.ack_batch("bat_1") == ["evt_offer_b"]  # it reached the portal

    dialogs, loaded_operators, undelivered = outbox.load_board("p1")
    assert sorted(dialogs, key=lambda d: d.dialog_id) == [offered_a, offered_b]
    assert sorted(loaded_operators, key=lambda o: o.operator_id) == operators
    assert undelivered == {"evt_offer_a"}
    assert outbox.load_board("p2") == ([], [], set())


def test_dialog_finds_open_and_closed_dialogs_of_its_portal_only(outbox: SqliteOutbox) -> None:
    opened = dialog_state("dlg_1")
    commit(outbox, dialogs=[opened])
    closed = replace(opened, state="closed", closed_reason="finished")
    commit(outbox, dialogs=[closed], now=NOW + 5)
    assert outbox.dialog("p1", "dlg_1") == closed
    assert outbox.load_board("p1")[0] == []
    assert outbox.dialog("p2", "dlg_1") is None
    assert outbox.dialog("p1", "dlg_nope") is None


def test_routing_context_has_owners_and_the_latest_dialog_of_each_conversation(
    outbox: SqliteOutbox,
) -> None:
    older = dialog_state("dlg_old", "d1", state="closed", closed_reason="finished")
    newer = dialog_state("dlg_new", "d1", state="closed", closed_reason="auto_closed")
    owners = CustomerOwners("tg-1/user-d1", "op-r", "op-a")
    commit(outbox, dialogs=[older, dialog_state("dlg_d2", "d2")], customers=[owners])
    commit(outbox, dialogs=[newer], now=NOW + 10)
    commit(outbox, "p2", customers=[CustomerOwners("tg-1/user-d2", "op-z", None)])

    found_owners, recent = outbox.routing_context(
        "p1",
        ["tg-1/user-d1", "tg-1/user-d2"],
        [dialog_ref("tg-1", "d1"), dialog_ref("tg-1", "d3")],
    )
    assert found_owners == {"tg-1/user-d1": owners}
    assert recent == {dialog_ref("tg-1", "d1"): newer}
    assert outbox.routing_context("p1", [], []) == ({}, {})
    assert outbox.customer_owners("p2", "tg-1/user-d2") == CustomerOwners(
        "tg-1/user-d2", "op-z", None
    )
    assert outbox.customer_owners("p1", "tg-1/user-d2") is None


def decision(n: int, dialog_id: str = "dlg_1") -> Decision:
    return Decision(
        decision_id=f"dec_{n}",
        dialog_id=dialog_id,
        line_id="support",
        at=NOW + n,
        rules_version=1,
        action="offer",
        operator_ids=("op-a",),
        path="queue",
        reason="",
        skipped={"op-b": "offline"},
    )


def test_decisions_of_a_dialog_come_newest_first_and_are_pruned_by_age(
    outbox: SqliteOutbox,
) -> None:
    commit(outbox, decisions=[decision(1), decision(2), decision(3, "dlg_2")])
    commit(outbox, decisions=[decision(4)])
    assert [d["decision_id"] for d in outbox.decisions("p1", "dlg_1", 10)] == [
        "dec_4",
        "dec_2",
        "dec_1",
    ]
    assert outbox.decisions("p1", "dlg_1", 1) == [decision(4).as_json()]
    assert outbox.decisions("p2", "dlg_1", 10) == []
    assert outbox.prune_decisions(older_than=NOW + 2) == 1
    assert [d["decision_id"] for d in outbox.decisions("p1", "dlg_1", 10)] == ["dec_4", "dec_2"]


# -- streams and batches ---------------------------------------------------------------------


def test_pending_is_per_stream_oldest_first(outbox: SqliteOutbox) -> None:
    dialogs = [f"d{n}" for n in range(12)]
    stored(outbox, [record(n, dialog=dialog) for n, dialog in enumerate(dialogs)])
    counts = [0, 0, 0]
    for stream_hash, count in outbox.startup(["p1"])["p1"].pending_by_hash.items():
        counts[stream_hash % 3] += count
    assert sum(counts) == 12
    for stream in range(3):
        pending = outbox.pending("p1", stream, 3, limit=100)
        assert len(pending) == counts[stream]
        assert [p.rowid for p in pending] == sorted(p.rowid for p in pending)
        assert all(dialog_hash(p.dialog_ref) % 3 == stream for p in pending)
    assert len(outbox.pending("p1", 0, 1, limit=5)) == 5


def test_claim_assigns_seq_in_given_order_and_continues_after_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    stored(store, [record(n) for n in range(1, 7)])
    rowids = pending_rowids(store)
    given = [rowids[2], rowids[0], rowids[1]]
    batch = store.claim_batch("p1", "bat_1", 0, given, {}, NOW)
    assert [e.rowid for e in batch.events] == given
    assert [e.seq for e in batch.events] == [1, 2, 3]
    assert [e.event_id for e in batch.events] == ["evt_3", "evt_1", "evt_2"]
    store.close()

    reopened = SqliteOutbox(path)
    try:
        batch2 = reopened.claim_batch("p1", "bat_2", 0, rowids[3:], {}, NOW)
        assert [e.seq for e in batch2.events] == [4, 5, 6]
        assert reopened.pending("p1", 0, 1, 100) == []
    finally:
        reopened.close()


def test_seq_is_per_portal(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(1), record(2, portal_id="p2")])
    (p2_event,) = outbox.pending("p2", 0, 1, 10)
    (p1_event,) = outbox.pending("p1", 0, 1, 10)
    assert outbox.claim_batch("p2", "b2", 0, [p2_event.rowid], {}, NOW).events[0].seq == 1
    assert outbox.claim_batch("p1", "b1", 0, [p1_event.rowid], {}, NOW).events[0].seq == 1


def test_best_effort_events_get_no_seq_and_use_none(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(1), record(2, best_effort=True), record(3)])
    batch = outbox.claim_batch("p1", "bat_1", 0, pending_rowids(outbox), {}, NOW)
    assert [e.seq for e in batch.events] == [1, None, 2]
    assert [e.best_effort for e in batch.events] == [False, True, False]


def test_a_best_effort_claim_makes_every_event_best_effort_for_good(path: Path) -> None:
    store = SqliteOutbox(path)
    stored(store, [record(1), record(2, best_effort=True), record(3), record(4)])
    rowids = pending_rowids(store)
    batch = store.claim_batch("p1", "bat_1", 0, rowids[:3], {}, NOW, all_best_effort=True)
    assert [e.seq for e in batch.events] == [None, None, None]
    assert [e.best_effort for e in batch.events] == [True, True, True]
    store.close()

    reopened = SqliteOutbox(path)
    try:
        (kept,) = reopened.open_batches("p1")  # the kind was fixed at the claim: it stays
        assert [(e.seq, e.best_effort) for e in kept.events] == [(None, True)] * 3
        later = reopened.claim_batch("p1", "bat_2", 0, rowids[3:], {}, NOW)
        assert [(e.seq, e.best_effort) for e in later.events] == [(1, False)]  # no gap before
    finally:
        reopened.close()


def test_attempts_are_counted_when_they_start_and_survive_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    stored(store, [record(1)])
    claim(store, "bat_1", pending_rowids(store))
    assert store.load_batch("bat_1") is not None
    store.start_attempt("bat_1", 1)
    store.schedule_retry("bat_1", NOW + 5, "HTTP 500")
    store.start_attempt("bat_1", 2)  # and then the process died mid-POST
    store.close()

    reopened = SqliteOutbox(path)
    try:
        batch = reopened.load_batch("bat_1")
        assert batch is not None
        assert (batch.attempts, batch.next_attempt_at) == (2, NOW + 5)
    finally:
        reopened.close()


def test_open_batches_after_reopen_keep_batch_order_stamps_and_retry_state(path: Path) -> None:
    store = SqliteOutbox(path)
    stored(store, [record(n) for n in range(1, 5)])
    rowids = pending_rowids(store)
    order = [rowids[3], rowids[1], rowids[0]]
    # an event moved into another slot of its dialog takes that slot's stamp
    store.claim_batch("p1", "bat_a", 2, order, {rowids[3]: b'{"id":"restamped"}'}, NOW)
    store.claim_batch("p1", "bat_b", 1, [rowids[2]], {}, NOW + 1)
    store.start_attempt("bat_a", 1)
    store.schedule_retry("bat_a", NOW + 30, "HTTP 503: " + "x" * 1000)
    store.close()

    reopened = SqliteOutbox(path)
    try:
        batches = reopened.open_batches("p1")
        assert [b.batch_id for b in batches] == ["bat_a", "bat_b"]
        first = batches[0]
        assert first.stream == 2
        assert first.attempts == 1
        assert first.next_attempt_at == NOW + 30
        assert [e.event_id for e in first.events] == ["evt_4", "evt_2", "evt_1"]
        assert [e.seq for e in first.events] == [1, 2, 3]
        assert [e.payload for e in first.events] == [b'{"n":4}', b'{"n":2}', b'{"n":1}']
        assert [e.dialog_json for e in first.events] == [b'{"id":"restamped"}', STAMP, STAMP]
        assert batches[1].events[0].dialog_json == STAMP  # none given: the owner's stamp stays
        assert reopened.open_batches("p2") == []
    finally:
        reopened.close()


def test_ack_removes_batch_and_events(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(1), record(2), record(3)])
    rowids = pending_rowids(outbox)
    claim(outbox, "bat_1", rowids[:2])
    assert outbox.depth("p1") == 3
    assert outbox.ack_batch("bat_1") == []  # no offers in it
    assert outbox.depth("p1") == 1
    assert outbox.open_batches("p1") == []
    assert outbox.load_batch("bat_1") is None
    assert pending_rowids(outbox) == rowids[2:]


def test_ack_and_drop_return_the_offers_they_carried(outbox: SqliteOutbox) -> None:
    outbox.append([record(1)], NOW)
    (row,) = outbox.inbox("p1", 10)
    commit(
        outbox,
        entries=[
            moved_in(row),
            engine_event("evt_offer_1", "d1", offer("op-a")),
            engine_event("evt_queued", "d2", DialogQueued(reason="new", position=1)),
            engine_event("evt_offer_2", "d2", offer("op-b")),
            engine_event("evt_offer_3", "d3", offer("op-c")),
        ],
    )
    message, offer_1, queued, offer_2, offer_3 = pending_rowids(outbox)
    claim(outbox, "bat_1", [message, offer_1, queued])
    assert outbox.ack_batch("bat_1") == ["evt_offer_1"]

    claim(outbox, "bat_2", [offer_2, offer_3])
    assert outbox.drop_events("bat_2", [offer_3], "ttl", NOW, True) == ["evt_offer_3"]
    assert outbox.drop_events("bat_2", [offer_2], "best effort", NOW, False) == ["evt_offer_2"]
    assert outbox.depth("p1") == 0
    assert [d.event_id for d in outbox.dead_letters("p1", 10, None)] == ["evt_offer_3"]


def test_drop_to_dead_letters_keeps_batch_order_and_reason(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(n) for n in range(1, 5)])
    rowids = pending_rowids(outbox)
    order = [rowids[2], rowids[0], rowids[3], rowids[1]]
    claim(outbox, "bat_1", order)
    dropped = outbox.drop_events(
        "bat_1", [rowids[0], rowids[2]], "not delivered within ttl", NOW + 9, True
    )
    assert dropped == []  # no offers among them

    left = outbox.load_batch("bat_1")
    assert left is not None
    assert [e.event_id for e in left.events] == ["evt_4", "evt_2"]
    letters = outbox.dead_letters("p1", limit=10, after_event_id=None)
    assert [(d.event_id, d.seq) for d in letters] == [("evt_3", 1), ("evt_1", 2)]
    assert {d.reason for d in letters} == {"not delivered within ttl"}
    assert {d.dead_at for d in letters} == {NOW + 9}
    assert letters[0].payload == b'{"n":3}'
    assert letters[0].dialog_json == STAMP

    outbox.drop_events("bat_1", [rowids[3], rowids[1]], "later", NOW + 10, True)
    assert outbox.load_batch("bat_1") is None  # an emptied batch is gone
    assert outbox.dead_letter_count("p1") == 4
    assert outbox.depth("p1") == 0


def test_dead_letters_page_after_an_event_id(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(n) for n in range(1, 6)])
    rowids = pending_rowids(outbox)
    claim(outbox, "bat_1", rowids)
    outbox.drop_events("bat_1", rowids, "ttl", NOW, True)

    page1 = outbox.dead_letters("p1", limit=2, after_event_id=None)
    page2 = outbox.dead_letters("p1", limit=2, after_event_id=page1[-1].event_id)
    page3 = outbox.dead_letters("p1", limit=2, after_event_id=page2[-1].event_id)
    assert [d.event_id for d in page1 + page2 + page3] == [f"evt_{n}" for n in range(1, 6)]
    assert outbox.dead_letters("p1", limit=2, after_event_id="evt_5") == []
    assert outbox.dead_letters("p2", limit=10, after_event_id=None) == []


def test_paging_after_an_unknown_dead_letter_is_refused(outbox: SqliteOutbox) -> None:
    with pytest.raises(NotFoundError, match="no dead letter 'evt_nope' to page after"):
        outbox.dead_letters("p1", limit=10, after_event_id="evt_nope")


def test_best_effort_drop_leaves_no_dead_letter(outbox: SqliteOutbox) -> None:
    stored(outbox, [record(1), record(2, best_effort=True)])
    rowids = pending_rowids(outbox)
    claim(outbox, "bat_1", rowids)
    outbox.drop_events("bat_1", [rowids[1]], "best effort", NOW, False)
    assert outbox.dead_letter_count("p1") == 0
    left = outbox.load_batch("bat_1")
    assert left is not None and [e.event_id for e in left.events] == ["evt_1"]


# -- the portal API: request ids and replies ---------------------------------------------------


def test_remember_request_refuses_a_replay_within_the_window(outbox: SqliteOutbox) -> None:
    assert outbox.remember_request("p1", "msg_1", NOW, 600) is True
    assert outbox.remember_request("p1", "msg_1", NOW + 599, 600) is False
    assert outbox.remember_request("p2", "msg_1", NOW + 1, 600) is True
    assert outbox.remember_request("p1", "msg_1", NOW + 601, 600) is True


def test_remembered_requests_survive_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    assert store.remember_request("p1", "msg_1", NOW, 600)
    store.close()
    reopened = SqliteOutbox(path)
    try:
        assert reopened.remember_request("p1", "msg_1", NOW + 1, 600) is False
    finally:
        reopened.close()


def reply(reply_id: str, portal_id: str = "p1", origin: str = "operator") -> StoredReply:
    return StoredReply(
        reply_id,
        portal_id,
        "dlg_1",
        b'{"t":1}',
        b'{"r":1}',
        NOW,
        0,
        NOW,
        origin,  # type: ignore[arg-type]
    )


def test_replies_are_kept_in_order_and_retry_state_persists(outbox: SqliteOutbox) -> None:
    commit(outbox, replies=[reply("rpl_b"), reply("rpl_a", origin="line"), reply("rpl_c")])
    commit(outbox, "p2", replies=[reply("rpl_other", "p2")])
    outbox.start_reply_attempt("rpl_a", 1, NOW + 1, durable=True)
    outbox.schedule_reply_retry("rpl_a", NOW + 7)
    replies = outbox.replies("p1")
    assert [r.reply_id for r in replies] == ["rpl_b", "rpl_a", "rpl_c"]
    assert replies[1] == replace(reply("rpl_a", origin="line"), attempts=1, next_attempt_at=NOW + 7)
    assert replies[0] == reply("rpl_b")
    assert outbox.portal_ids() == {"p1", "p2"}


def test_a_reply_attempt_in_flight_is_remembered_across_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    commit(store, replies=[reply("rpl_a"), reply("rpl_b")])
    store.start_reply_attempt("rpl_a", 1, NOW + 1, durable=True)
    store.schedule_reply_retry("rpl_a", NOW + 5)  # failed with an answer: outcome known
    store.start_reply_attempt("rpl_a", 2, NOW + 5, durable=True)  # then the process died
    store.start_reply_attempt("rpl_b", 1, NOW + 2, durable=False)
    store.close()

    reopened = SqliteOutbox(path)
    try:
        first, second = reopened.replies("p1")
        assert first == replace(
            reply("rpl_a"), attempts=2, next_attempt_at=NOW + 5, attempt_started_at=NOW + 5
        )
        assert second == replace(reply("rpl_b"), attempts=1, attempt_started_at=NOW + 2)
    finally:
        reopened.close()


def test_a_file_from_before_the_attempt_marker_gets_it_on_open(path: Path) -> None:
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE replies (reply_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL,"
        " dialog_id TEXT NOT NULL, target_json BLOB NOT NULL, request_json BLOB NOT NULL,"
        " created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at REAL NOT NULL, origin TEXT NOT NULL);"
        f" INSERT INTO replies VALUES ('rpl_old', 'p1', 'dlg_1', x'7b7d', x'7b7d', {NOW}, 3,"
        f" {NOW}, 'operator');"
    )
    old.close()
    store = SqliteOutbox(path)
    try:
        (loaded,) = store.replies("p1")
        assert (loaded.reply_id, loaded.attempts, loaded.attempt_started_at) == ("rpl_old", 3, None)
        commit(store, replies=[reply("rpl_new")])
        assert [r.reply_id for r in store.replies("p1")] == ["rpl_old", "rpl_new"]
    finally:
        store.close()


def test_a_reply_outcome_joins_its_stream_as_the_reply_leaves(outbox: SqliteOutbox) -> None:
    commit(outbox, replies=[reply("rpl_1"), reply("rpl_2")])
    outcome = ReplySent(
        reply_id="rpl_1", client_id="c-1", origin="operator", channel_message_ids=("1000",)
    )
    (stream_hash,) = commit(
        outbox,
        entries=[engine_event("evt_sent", "d1", outcome, b'{"id":"dlg_1"}')],
        settled=["rpl_1"],
    )
    assert stream_hash == dialog_hash(dialog_ref("tg-1", "d1"))
    assert [r.reply_id for r in outbox.replies("p1")] == ["rpl_2"]
    (pending,) = outbox.pending("p1", stream_hash % 4, 4, 10)
    assert (pending.event_id, pending.kind) == ("evt_sent", "reply.sent")
    assert pending.dialog_json == b'{"id":"dlg_1"}'
    batch = outbox.claim_batch("p1", "bat_1", 0, [pending.rowid], {}, NOW)
    assert batch.events[0].payload == outcome.model_dump_json().encode()


def test_a_failed_settlement_keeps_the_reply(outbox: SqliteOutbox) -> None:
    commit(outbox, replies=[reply("rpl_1")])
    outcome = ReplySent(reply_id="rpl_1", client_id=None, origin="operator", channel_message_ids=())
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: replies"):
        commit(
            outbox,
            entries=[engine_event("evt_sent", "d1", outcome)],
            replies=[reply("rpl_1")],
            settled=["rpl_1"],
        )
    assert [r.reply_id for r in outbox.replies("p1")] == ["rpl_1"]
    assert outbox.depth("p1") == 0


# -- group commit ---------------------------------------------------------------------------


class CountingOutbox:
    """The real SQLite outbox, counting the transactions ``append`` opens."""

    def __init__(self, path: Path) -> None:
        self.inner = SqliteOutbox(path)
        self.group_sizes: list[int] = []
        self.fail_next = False
        self.fail_groups = False
        """Refuse any transaction of more than one record (as one bad member would)."""

    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]:
        self.group_sizes.append(len(records))
        if self.fail_next or (self.fail_groups and len(records) > 1):
            self.fail_next = False
            raise sqlite3.OperationalError("disk I/O error")
        return self.inner.append(records, now)

    def close(self) -> None:
        self.inner.close()


async def test_concurrent_appends_share_commits_and_get_their_own_results(path: Path) -> None:
    counting = CountingOutbox(path)
    threaded = ThreadedStore(counting, ManualClock(NOW))
    counting.inner.append([record(1000)], NOW)  # seen before: a duplicate for caller 0

    def records_of(caller: int) -> list[OutboxRecord]:
        own = [record(caller * 10 + n) for n in range(1, 1 + caller % 3)]
        # every caller also repeats its first record: False within its own call
        extra = [record(1000)] if caller == 0 else [own[0]] if own else []
        return own + extra

    callers = 40
    results = await asyncio.gather(*(threaded.append(records_of(c)) for c in range(callers)))
    await threaded.close()

    for caller, result in enumerate(results):
        own = caller % 3
        expected = [True] * own + ([False] if caller == 0 or own else [])
        assert result == expected, caller
    assert len(counting.group_sizes) < callers
    assert sum(counting.group_sizes) == sum(len(records_of(c)) for c in range(callers))

    check = SqliteOutbox(path)
    try:
        assert check.depth("p1") == 1 + sum(c % 3 for c in range(callers))
    finally:
        check.close()


async def test_appends_arriving_during_a_commit_go_into_the_next_group(path: Path) -> None:
    counting = CountingOutbox(path)
    threaded = ThreadedStore(counting, ManualClock(NOW))
    first = asyncio.ensure_future(threaded.append([record(1)]))
    await asyncio.sleep(0)  # the committer has taken the first group
    later = [asyncio.ensure_future(threaded.append([record(n)])) for n in range(2, 12)]
    assert await first == [True]
    assert [await task for task in later] == [[True]] * 10
    await threaded.close()
    assert counting.group_sizes == [1, 10]


async def test_a_group_whose_commit_fails_is_written_again_member_by_member(
    path: Path,
) -> None:
    """A batch shares work, never failure: a passing fault of the shared commit costs each
    member one more transaction of its own, and no caller sees the group's error."""
    counting = CountingOutbox(path)
    threaded = ThreadedStore(counting, ManualClock(NOW))
    counting.fail_groups = True
    first = asyncio.ensure_future(threaded.append([record(1)]))
    await asyncio.sleep(0)  # the committer has taken the first group
    group = [asyncio.ensure_future(threaded.append([record(n)])) for n in range(2, 5)]
    outcomes = await asyncio.gather(first, *group)
    await threaded.close()
    assert outcomes == [[True], [True], [True], [True]]
    assert counting.group_sizes == [1, 3, 1, 1, 1]  # the failed group, then each alone
    counting.fail_next = True
    threaded = ThreadedStore(counting, ManualClock(NOW))
    with pytest.raises(sqlite3.OperationalError):  # a group of one fails alone, at once
        await threaded.append([record(9)])
    await threaded.close()
