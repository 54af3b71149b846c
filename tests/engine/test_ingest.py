"""The acknowledgement path without Ray: a channel actor's intake and the hand-off after it.

Webhooks waiting together are written in one transaction and answered; the records then go
to their portal actors in one call per destination; a destination that fails keeps its
records in the intake, in order, while the others carry on; a record that cannot be stored
fails alone instead of failing every webhook of its group commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import SystemClock
from engine.errors import UnavailableError
from engine.handoff import Handoff
from engine.ingest import outbox_record
from engine.metrics import Counters
from engine.store.intake import Addressed, IntakeStore
from engine.store.records import Conversation, OutboxRecord, pack_records, unpack_records
from engine.store.threaded import ThreadedStore
from tests.engine.conftest import eventually, inbound_message


def record(name: str, portal_id: str = "p1", order_key: int = 0) -> OutboxRecord:
    return OutboxRecord(
        portal_id=portal_id,
        event_id=name,
        kind="message.received",
        conversation=Conversation(
            line_id="support",
            connector_id="tg-1",
            channel="telegram",
            dialog_key="42",
            customer_id="42",
        ),
        order_key=order_key,
        received_at=0.0,
        payload=b"{}",
        dedup_key=name,
    )


def addressed(name: str, destination: str = "portal-p1", order_key: int = 0) -> Addressed:
    return Addressed(destination, record(name, destination.removeprefix("portal-"), order_key))


def test_a_message_is_stored_with_its_conversation_and_dedup_key() -> None:
    message = inbound_message(
        "p1", "42", 7, received_at=5.0, delivery="best_effort", event_no="upd-9"
    )
    stored = outbox_record(message.model_copy(update={"action": "edit"}))
    assert stored.conversation == Conversation(
        line_id="support",
        connector_id="tg-1",
        channel="telegram",
        dialog_key="42",
        customer_id="42",
    )
    assert (stored.portal_id, stored.event_id, stored.kind) == ("p1", message.id, "message.edited")
    assert stored.dedup_key == "tg-1\x00upd-9"
    assert stored.dialog_ref == "tg-1\x0042"
    assert (stored.order_key, stored.received_at, stored.best_effort) == (7, 5.0, True)
    assert outbox_record(message).kind == "message.received"


# -- the intake ------------------------------------------------------------------------------


def test_the_intake_keeps_records_per_destination_in_order_and_refuses_a_repeat(
    tmp_path: Path,
) -> None:
    intake = IntakeStore(tmp_path / "intake.sqlite3")
    try:
        kept = intake.append(
            [addressed("a", order_key=1), addressed("b", "portal-p2"), addressed("c", order_key=2)],
            now=1.0,
        )
        again = intake.append([addressed("a"), addressed("d")], now=2.0)

        assert [row is not None for row in kept] == [True, True, True]
        assert [row is not None for row in again] == [False, True]
        assert [row.record.event_id for row in kept if row] == ["a", "b", "c"]
        assert kept[1] is not None and kept[1].destination == "portal-p2"
        assert sorted(intake.destinations()) == ["portal-p1", "portal-p2"]
        batches = intake.pending_by_destination(["portal-p1", "portal-p2"], limit=2)
        assert [r.record.event_id for r in batches["portal-p1"]] == ["a", "c"]
        assert [r.record for r in batches["portal-p2"]] == [record("b", "p2")]
        intake.forget([row.rowid for row in batches["portal-p1"]])
        assert [
            r.record.event_id for r in intake.pending_by_destination(["portal-p1"], 10)["portal-p1"]
        ] == ["d"]
        assert intake.count() == 2
        assert intake.prune_seen(older_than=1.5) == 3  # a, b, c seen at 1.0
    finally:
        intake.close()


def test_what_the_intake_held_is_there_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "intake.sqlite3"
    first = IntakeStore(path)
    first.append([addressed("a"), addressed("b")], now=1.0)
    first.close()  # as a killed process leaves it: committed, not handed off

    second = IntakeStore(path)
    try:
        rows = second.pending_by_destination(second.destinations(), 10)["portal-p1"]
        assert [row.record.event_id for row in rows] == ["a", "b"]
    finally:
        second.close()


# -- group commit: a batch shares work, never failure ----------------------------------------


class PickyIntake(IntakeStore):
    """A real intake that cannot store one particular record (as SQLite refuses an integer
    over 2**63): what a group commit must survive."""

    def append(self, records: Any, now: float) -> list[Any]:
        if any(item.record.event_id == "poison" for item in records):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return super().append(records, now)


async def test_a_record_that_cannot_be_stored_fails_alone(tmp_path: Path) -> None:
    store = ThreadedStore(PickyIntake(tmp_path / "intake.sqlite3"), SystemClock(), "intake")
    try:
        results = await asyncio.gather(
            store.append([addressed("a")]),
            store.append([addressed("poison")]),
            store.append([addressed("b"), addressed("c")]),
            return_exceptions=True,
        )
        assert [row is not None for row in results[0]] == [True]  # type: ignore[union-attr]
        assert isinstance(results[1], OverflowError)
        assert [row is not None for row in results[2]] == [True, True]  # type: ignore[union-attr]
        assert store.store.count() == 3
    finally:
        await store.close()


# -- the hand-off ----------------------------------------------------------------------------


class Destinations:
    """A real async ``send``: per destination, what it stored; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.failing: set[str] = set()
        self.delivered: dict[str, list[str]] = {}
        self.watermarks: list[tuple[str, float]] = []

    async def send(
        self, destination: str, records: list[OutboxRecord], watermark: float
    ) -> list[bool]:
        self.calls.append((destination, [r.event_id for r in records]))
        self.watermarks.append((destination, watermark))
        await asyncio.sleep(0)  # an actor call yields to the loop
        if destination in self.failing:
            raise ConnectionError(f"{destination} is restarting")
        self.delivered.setdefault(destination, []).extend(r.event_id for r in records)
        return [True] * len(records)

    def stored(self, destination: str) -> list[str]:
        return self.delivered.get(destination, [])


def waiting(intake: ThreadedStore[IntakeStore]) -> int:
    """Records in the intake, read on a second connection (the store thread owns the first)."""
    reader = IntakeStore(intake.store.path)
    try:
        return reader.count()
    finally:
        reader.close()


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[ThreadedStore[IntakeStore]]:
    store = ThreadedStore(IntakeStore(tmp_path / "intake.sqlite3"), SystemClock(), "intake")
    yield store
    await store.close()


async def test_records_go_in_one_call_per_destination_and_leave_the_intake(
    intake: ThreadedStore[IntakeStore],
) -> None:
    destinations = Destinations()
    handoff = Handoff(intake, destinations.send, 100, Counters(), floor=lambda: 50.0)
    await asyncio.gather(
        intake.append([addressed("a1"), addressed("b1", "portal-p2")]),
        intake.append([addressed("a2")]),
    )
    await handoff.load()
    task = asyncio.create_task(handoff.run())
    try:
        await eventually(lambda: waiting(intake) == 0, what="the intake emptied")
        assert sorted(destinations.calls) == [("portal-p1", ["a1", "a2"]), ("portal-p2", ["b1"])]
    finally:
        task.cancel()


async def test_a_failing_destination_keeps_its_records_while_others_carry_on(
    intake: ThreadedStore[IntakeStore],
) -> None:
    destinations = Destinations()
    destinations.failing.add("portal-down")
    counters = Counters()
    handoff = Handoff(intake, destinations.send, 2, counters, floor=lambda: 50.0)
    await intake.append([addressed(f"d{n}", "portal-down") for n in range(3)])
    await intake.append([addressed(f"u{n}", "portal-up") for n in range(5)])
    await handoff.load()
    task = asyncio.create_task(handoff.run())
    try:
        await eventually(lambda: destinations.stored("portal-up") == [f"u{n}" for n in range(5)])
        await eventually(lambda: waiting(intake) == 3, what="the up records forgotten")
        assert counters.value("openlines_handoff_failed_total", destination="portal-down") >= 1

        destinations.failing.clear()  # back after its restart
        await eventually(lambda: waiting(intake) == 0, what="the late destination")
        assert destinations.stored("portal-down") == ["d0", "d1", "d2"]  # in order, once
    finally:
        task.cancel()


async def test_no_watermark_until_the_intake_of_a_previous_run_is_read(
    intake: ThreadedStore[IntakeStore],
) -> None:
    """A restarted channel actor asked for its watermark while it reads its intake must not
    answer "nothing before now": the records it acknowledged before dying are older."""
    handoff = Handoff(intake, Destinations().send, 10, Counters(), floor=lambda: 50.0)
    await intake.append([addressed("before the crash")])  # received at 0.0
    with pytest.raises(UnavailableError):
        handoff.watermark("portal-p1")
    await handoff.load()
    assert handoff.watermark("portal-p1") == 0.0
    assert handoff.watermark("portal-elsewhere") == 50.0


async def test_a_clean_stop_drains_the_intake(intake: ThreadedStore[IntakeStore]) -> None:
    destinations = Destinations()
    handoff = Handoff(intake, destinations.send, 1, Counters(), floor=lambda: 50.0)
    await intake.append([addressed(f"m{n}") for n in range(4)])

    await handoff.load()
    assert await handoff.drain(timeout_s=5) == 0
    assert destinations.stored("portal-p1") == ["m0", "m1", "m2", "m3"]


async def test_a_drain_that_cannot_reach_a_destination_leaves_its_records_on_disk(
    intake: ThreadedStore[IntakeStore],
) -> None:
    destinations = Destinations()
    destinations.failing.add("portal-p1")
    handoff = Handoff(intake, destinations.send, 10, Counters(), floor=lambda: 50.0)
    await intake.append([addressed("m0")])

    await handoff.load()
    assert await handoff.drain(timeout_s=0.2) == 1


def test_sqlite_really_refuses_an_integer_over_2_to_the_63(tmp_path: Path) -> None:
    """Why a bound at the channel's model matters (PickyIntake's failure is real)."""
    intake = IntakeStore(tmp_path / "intake.sqlite3")
    try:
        with pytest.raises(OverflowError):
            intake.append([Addressed("portal-p1", record("big", order_key=2**63))], now=1.0)
        assert intake.count() == 0
    finally:
        intake.close()


async def test_each_hand_off_carries_how_far_this_actor_has_handed_over(
    intake: ThreadedStore[IntakeStore],
) -> None:
    destinations = Destinations()
    handoff = Handoff(intake, destinations.send, 2, Counters(), floor=lambda: 50.0)
    await intake.append([Addressed("portal-p1", at(record(f"m{n}"), 10.0 + n)) for n in range(3)])

    await handoff.load()
    assert await handoff.drain(timeout_s=5) == 0

    # Two of three went first: the third (received at 12) bounds the mark; then the floor.
    assert destinations.watermarks == [("portal-p1", 12.0), ("portal-p1", 50.0)]
    assert handoff.watermark("portal-p1") == 50.0
    handoff.add(await intake.append([Addressed("portal-p1", at(record("late"), 30.0))]))
    assert handoff.watermark("portal-p1") == 30.0  # still waiting to be handed off


def at(item: OutboxRecord, received_at: float) -> OutboxRecord:
    return replace(item, received_at=received_at)


_text = st.text(max_size=20)
_records = st.builds(
    OutboxRecord,
    portal_id=_text,
    event_id=_text,
    kind=st.sampled_from(["message.received", "message.edited", "channel.event"]),
    conversation=st.builds(
        Conversation,
        line_id=_text,
        connector_id=_text,
        channel=_text,
        dialog_key=_text,
        customer_id=_text,
        address=_text,
    ),
    order_key=st.integers(min_value=0, max_value=2**63 - 1),
    received_at=st.floats(allow_nan=False),
    payload=st.binary(max_size=64),
    dedup_key=_text,
    best_effort=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_records, max_size=8))
def test_packed_records_come_back_equal(records: list[OutboxRecord]) -> None:
    """The hand-off's records cross Ray packed (actors.remote.PortalRemote): every field of
    every record comes back, in order."""
    assert unpack_records(pack_records(records)) == records
