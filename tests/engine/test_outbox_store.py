"""The SQLite outbox on a real file, and group commit through ``ThreadedStore``."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.errors import NotFoundError
from engine.store.records import OutboxRecord, StoredReply, dialog_hash, dialog_ref
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.threaded import ThreadedStore

NOW = 1_800_000_000.0


def record(
    event_no: int,
    *,
    portal_id: str = "p1",
    dialog: str = "d1",
    dedup: str | None = "auto",
    best_effort: bool = False,
    kind: str = "message.received",
) -> OutboxRecord:
    return OutboxRecord(
        portal_id=portal_id,
        event_id=f"evt_{event_no}",
        kind=kind,
        dialog_ref=dialog_ref("tg-1", dialog),
        order_key=event_no,
        received_at=NOW + event_no,
        payload=b'{"n":%d}' % event_no,
        dedup_key=f"tg-1\x00{event_no}" if dedup == "auto" else dedup,
        best_effort=best_effort,
    )


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
    store.claim_batch("p1", batch_id, stream, rowids, {r: b'{"id":"dlg"}' for r in rowids}, NOW)


def test_wal_mode_and_full_sync(outbox: SqliteOutbox, path: Path) -> None:
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_duplicate_dedup_keys_are_refused_even_within_one_call(outbox: SqliteOutbox) -> None:
    first = record(1)
    assert outbox.append([first, record(2), replace(first, event_id="evt_again")], NOW) == [
        True,
        True,
        False,
    ]
    assert outbox.append([record(1), record(3)], NOW) == [False, True]
    assert outbox.depth("p1") == 3


def test_dedup_is_per_portal_and_events_without_key_always_pass(outbox: SqliteOutbox) -> None:
    outbox.append([record(1)], NOW)
    assert outbox.append([record(1, portal_id="p2")], NOW) == [True]
    no_key = record(9, dedup=None)
    assert outbox.append([no_key, no_key], NOW) == [True, True]


def test_pruned_dedup_keys_are_accepted_again(outbox: SqliteOutbox) -> None:
    outbox.append([record(1)], NOW)
    outbox.append([record(2)], NOW + 100)
    assert outbox.prune_seen(older_than=NOW + 50) == 1
    assert outbox.append([record(1), record(2)], NOW + 200) == [True, False]


def test_pending_is_per_stream_oldest_first(outbox: SqliteOutbox) -> None:
    dialogs = [f"d{n}" for n in range(12)]
    outbox.append([record(n, dialog=dialog) for n, dialog in enumerate(dialogs)], NOW)
    counts = outbox.pending_counts("p1", 3)
    assert sum(counts) == 12
    for stream in range(3):
        pending = outbox.pending("p1", stream, 3, limit=100)
        assert len(pending) == counts[stream]
        assert [p.rowid for p in pending] == sorted(p.rowid for p in pending)
        assert all(dialog_hash(p.dialog_ref) % 3 == stream for p in pending)
    assert len(outbox.pending("p1", 0, 1, limit=5)) == 5


def test_claim_assigns_seq_in_given_order_and_continues_after_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    store.append([record(n) for n in range(1, 7)], NOW)
    rowids = [p.rowid for p in store.pending("p1", 0, 1, 100)]
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
    outbox.append([record(1), record(2, portal_id="p2")], NOW)
    (p2_event,) = outbox.pending("p2", 0, 1, 10)
    (p1_event,) = outbox.pending("p1", 0, 1, 10)
    assert outbox.claim_batch("p2", "b2", 0, [p2_event.rowid], {}, NOW).events[0].seq == 1
    assert outbox.claim_batch("p1", "b1", 0, [p1_event.rowid], {}, NOW).events[0].seq == 1


def test_best_effort_events_get_no_seq_and_use_none(outbox: SqliteOutbox) -> None:
    outbox.append([record(1), record(2, best_effort=True), record(3)], NOW)
    rowids = [p.rowid for p in outbox.pending("p1", 0, 1, 10)]
    batch = outbox.claim_batch("p1", "bat_1", 0, rowids, {}, NOW)
    assert [e.seq for e in batch.events] == [1, None, 2]
    assert [e.best_effort for e in batch.events] == [False, True, False]


def test_open_batches_after_reopen_keep_batch_order_dialog_and_retry_state(path: Path) -> None:
    store = SqliteOutbox(path)
    store.append([record(n) for n in range(1, 5)], NOW)
    rowids = [p.rowid for p in store.pending("p1", 0, 1, 100)]
    order = [rowids[3], rowids[1], rowids[0]]
    store.claim_batch("p1", "bat_a", 2, order, {r: b'{"id":"dlg_%d"}' % r for r in order}, NOW)
    store.claim_batch("p1", "bat_b", 1, [rowids[2]], {}, NOW + 1)
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
        assert first.events[0].dialog_json == b'{"id":"dlg_%d"}' % rowids[3]
        assert batches[1].events[0].dialog_json == b"{}"  # none given, none stored
        assert reopened.open_batches("p2") == []
    finally:
        reopened.close()


def test_claim_keeps_a_dialog_already_known(outbox: SqliteOutbox) -> None:
    outbox.append([replace(record(1), dialog_json=b'{"id":"known"}')], NOW)
    (event,) = outbox.pending("p1", 0, 1, 10)
    assert event.dialog_json == b'{"id":"known"}'
    batch = outbox.claim_batch("p1", "b", 0, [event.rowid], {event.rowid: b'{"id":"new"}'}, NOW)
    assert batch.events[0].dialog_json == b'{"id":"known"}'


def test_ack_removes_batch_and_events(outbox: SqliteOutbox) -> None:
    outbox.append([record(1), record(2), record(3)], NOW)
    rowids = [p.rowid for p in outbox.pending("p1", 0, 1, 10)]
    claim(outbox, "bat_1", rowids[:2])
    assert outbox.depth("p1") == 3
    outbox.ack_batch("bat_1")
    assert outbox.depth("p1") == 1
    assert outbox.open_batches("p1") == []
    assert outbox.load_batch("bat_1") is None
    assert [p.rowid for p in outbox.pending("p1", 0, 1, 10)] == rowids[2:]


def test_drop_to_dead_letters_keeps_batch_order_and_reason(outbox: SqliteOutbox) -> None:
    outbox.append([record(n) for n in range(1, 5)], NOW)
    rowids = [p.rowid for p in outbox.pending("p1", 0, 1, 10)]
    order = [rowids[2], rowids[0], rowids[3], rowids[1]]
    claim(outbox, "bat_1", order)
    outbox.drop_events("bat_1", [rowids[0], rowids[2]], "not delivered within ttl", NOW + 9, True)

    left = outbox.load_batch("bat_1")
    assert left is not None
    assert [e.event_id for e in left.events] == ["evt_4", "evt_2"]
    letters = outbox.dead_letters("p1", limit=10, after_event_id=None)
    assert [(d.event_id, d.seq) for d in letters] == [("evt_3", 1), ("evt_1", 2)]
    assert {d.reason for d in letters} == {"not delivered within ttl"}
    assert {d.dead_at for d in letters} == {NOW + 9}
    assert letters[0].payload == b'{"n":3}'
    assert letters[0].dialog_json == b'{"id":"dlg"}'

    outbox.drop_events("bat_1", [rowids[3], rowids[1]], "later", NOW + 10, True)
    assert outbox.load_batch("bat_1") is None  # an emptied batch is gone
    assert outbox.dead_letter_count("p1") == 4
    assert outbox.depth("p1") == 0


def test_dead_letters_page_after_an_event_id(outbox: SqliteOutbox) -> None:
    outbox.append([record(n) for n in range(1, 6)], NOW)
    rowids = [p.rowid for p in outbox.pending("p1", 0, 1, 10)]
    claim(outbox, "bat_1", rowids)
    outbox.drop_events("bat_1", rowids, "ttl", NOW, True)

    page1 = outbox.dead_letters("p1", limit=2, after_event_id=None)
    page2 = outbox.dead_letters("p1", limit=2, after_event_id=page1[-1].event_id)
    page3 = outbox.dead_letters("p1", limit=2, after_event_id=page2[-1].event_id)
    assert [d.event_id for d in page1 + page2 + page3] == [f"evt_{n}" for n in range(1, 6)]
    assert outbox.dead_letters("p1", limit=2, after_event_id="evt_5") == []
    assert outbox.dead_letters("p2", limit=10, after_event_id=None) == []


def test_best_effort_drop_leaves_no_dead_letter(outbox: SqliteOutbox) -> None:
    outbox.append([record(1), record(2, best_effort=True)], NOW)
    rowids = [p.rowid for p in outbox.pending("p1", 0, 1, 10)]
    claim(outbox, "bat_1", rowids)
    outbox.drop_events("bat_1", [rowids[1]], "best effort", NOW, False)
    assert outbox.dead_letter_count("p1") == 0
    left = outbox.load_batch("bat_1")
    assert left is not None and [e.event_id for e in left.events] == ["evt_1"]


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


def reply(reply_id: str, portal_id: str = "p1") -> StoredReply:
    return StoredReply(reply_id, portal_id, "dlg_1", b"{}", b"{}", NOW, 0, NOW)


def test_replies_are_kept_in_order_and_retry_state_persists(outbox: SqliteOutbox) -> None:
    for reply_id in ("rpl_b", "rpl_a", "rpl_c"):
        outbox.add_reply(reply(reply_id))
    outbox.add_reply(reply("rpl_other", "p2"))
    outbox.schedule_reply_retry("rpl_a", NOW + 7)
    replies = outbox.replies("p1")
    assert [r.reply_id for r in replies] == ["rpl_b", "rpl_a", "rpl_c"]
    assert (replies[1].attempts, replies[1].next_attempt_at) == (1, NOW + 7)
    assert outbox.portal_ids() == {"p1", "p2"}


def test_settle_reply_stores_outcome_and_removes_reply_together(outbox: SqliteOutbox) -> None:
    outbox.add_reply(reply("rpl_1"))
    outcome = replace(record(50, dedup=None, kind="reply.sent"), dialog_json=b'{"id":"dlg_1"}')
    outbox.settle_reply("rpl_1", outcome, NOW)
    assert outbox.replies("p1") == []
    (pending,) = outbox.pending("p1", dialog_hash(outcome.dialog_ref) % 4, 4, 10)
    assert (pending.event_id, pending.kind) == ("evt_50", "reply.sent")


def test_settle_reply_is_atomic(outbox: SqliteOutbox) -> None:
    outbox.add_reply(reply("rpl_1"))
    broken = replace(record(50, dedup=None, kind="reply.sent"), payload=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        outbox.settle_reply("rpl_1", broken, NOW)
    assert [r.reply_id for r in outbox.replies("p1")] == ["rpl_1"]
    assert outbox.depth("p1") == 0


def test_a_failed_append_stores_nothing(outbox: SqliteOutbox) -> None:
    broken = replace(record(2), payload=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        outbox.append([record(1), broken], NOW)
    assert outbox.depth("p1") == 0
    assert outbox.append([record(1)], NOW) == [True]  # its dedup key was rolled back too


# -- group commit ---------------------------------------------------------------------------


class CountingOutbox:
    """The real SQLite outbox, counting the transactions ``append`` opens."""

    def __init__(self, path: Path) -> None:
        self.inner = SqliteOutbox(path)
        self.group_sizes: list[int] = []
        self.fail_next = False

    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]:
        self.group_sizes.append(len(records))
        if self.fail_next:
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


async def test_a_failed_commit_fails_its_whole_group_only(path: Path) -> None:
    counting = CountingOutbox(path)
    threaded = ThreadedStore(counting, ManualClock(NOW))
    counting.fail_next = True
    group = [threaded.append([record(n)]) for n in range(1, 4)]
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
    assert await threaded.append([record(1)]) == [True]
    await threaded.close()


def test_paging_after_an_unknown_dead_letter_is_refused(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    with pytest.raises(NotFoundError, match="no dead letter 'evt_nope' to page after"):
        outbox.dead_letters("p1", limit=10, after_event_id="evt_nope")
    outbox.close()
