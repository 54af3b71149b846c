"""``IngestBatcher``: webhooks within one linger become one call; each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from engine.clock import ManualClock
from engine.ingest import IngestBatcher, outbox_record
from engine.store.records import Conversation, OutboxRecord
from tests.engine.conftest import eventually, inbound_message

LINGER_S = 0.002


def record(name: str, portal_id: str = "p1") -> OutboxRecord:
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
        order_key=0,
        received_at=0.0,
        payload=b"{}",
        dedup_key=name,
    )


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


class Destination:
    """A real async ``send``: stores names, answers False for names seen before."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.seen: set[str] = set()
        self.failure: Exception | None = None

    async def send(self, destination: str, records: list[OutboxRecord]) -> list[bool]:
        self.calls.append((destination, [r.event_id for r in records]))
        await asyncio.sleep(0)  # an actor call yields to the loop
        if self.failure is not None:
            raise self.failure
        results = []
        for item in records:
            results.append(item.event_id not in self.seen)
            self.seen.add(item.event_id)
        return results


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def destination() -> Destination:
    return Destination()


def submit(batcher: IngestBatcher, portal: str, *names: str) -> asyncio.Task[list[bool]]:
    return asyncio.ensure_future(batcher.submit(portal, [record(n) for n in names]))


async def test_submits_within_the_linger_make_one_call(
    clock: ManualClock, destination: Destination
) -> None:
    batcher = IngestBatcher(destination.send, clock, LINGER_S, max_records=100)
    first = submit(batcher, "portal-a", "a1", "a2")
    second = submit(batcher, "portal-a", "b1", "a1")
    third = submit(batcher, "portal-a", "c1")
    await eventually(lambda: clock.sleepers == 1)
    assert destination.calls == []
    await clock.advance(LINGER_S)
    results = list(await asyncio.wait_for(asyncio.gather(first, second, third), 5))
    assert destination.calls == [("portal-a", ["a1", "a2", "b1", "a1", "c1"])]
    assert results == [[True, True], [True, False], [True]]


async def test_each_destination_gets_its_own_call(
    clock: ManualClock, destination: Destination
) -> None:
    batcher = IngestBatcher(destination.send, clock, LINGER_S, max_records=100)
    tasks = [
        submit(batcher, "portal-a", "a1"),
        submit(batcher, "portal-b", "b1"),
        submit(batcher, "portal-a", "a2"),
    ]
    await eventually(lambda: clock.sleepers == 2)
    await clock.advance(LINGER_S)
    assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [[True], [True], [True]]
    assert sorted(destination.calls) == [("portal-a", ["a1", "a2"]), ("portal-b", ["b1"])]


async def test_a_failed_call_fails_every_waiter(
    clock: ManualClock, destination: Destination
) -> None:
    destination.failure = ConnectionError("portal actor died")
    batcher = IngestBatcher(destination.send, clock, LINGER_S, max_records=100)
    tasks = [submit(batcher, "portal-a", "a1"), submit(batcher, "portal-a", "a2", "a3")]
    await eventually(lambda: clock.sleepers == 1)
    await clock.advance(LINGER_S)
    for task in tasks:
        with pytest.raises(ConnectionError, match="portal actor died"):
            await asyncio.wait_for(task, 5)
    assert len(destination.calls) == 1

    destination.failure = None
    retry = submit(batcher, "portal-a", "a1")
    await eventually(lambda: clock.sleepers == 1)
    await clock.advance(LINGER_S)
    assert await asyncio.wait_for(retry, 5) == [True]


async def test_max_records_flushes_at_once(clock: ManualClock, destination: Destination) -> None:
    batcher = IngestBatcher(destination.send, clock, linger_s=60.0, max_records=3)
    first = submit(batcher, "portal-a", "a1")
    await eventually(lambda: clock.sleepers == 1)
    second = submit(batcher, "portal-a", "a2", "a3", "a4")
    # no clock movement: the batch is full
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 5)) == [
        [True],
        [True, True, True],
    ]
    assert destination.calls == [("portal-a", ["a1", "a2", "a3", "a4"])]
    assert clock.sleepers == 0  # the linger timer was cancelled

    late = submit(batcher, "portal-a", "a5")
    await eventually(lambda: clock.sleepers == 1)
    await clock.advance(60.0)
    assert await asyncio.wait_for(late, 5) == [True]
    assert len(destination.calls) == 2


async def test_no_linger_sends_on_the_next_loop_turn(destination: Destination) -> None:
    batcher = IngestBatcher(destination.send, ManualClock(), linger_s=0.0, max_records=100)
    first = submit(batcher, "portal-a", "a1")
    second = submit(batcher, "portal-a", "a2")
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 5)) == [[True], [True]]
    assert destination.calls == [("portal-a", ["a1", "a2"])]


async def test_nothing_to_store_makes_no_call(clock: ManualClock, destination: Destination) -> None:
    batcher = IngestBatcher(destination.send, clock, LINGER_S, max_records=100)
    assert await batcher.submit("portal-a", []) == []
    assert clock.sleepers == 0
    assert destination.calls == []


async def test_drain_flushes_without_waiting_for_the_linger(
    clock: ManualClock, destination: Destination
) -> None:
    batcher = IngestBatcher(destination.send, clock, linger_s=60.0, max_records=100)
    task = submit(batcher, "portal-a", "a1")
    await eventually(lambda: clock.sleepers == 1)
    await asyncio.wait_for(batcher.drain(), 5)
    assert task.done() and task.result() == [True]
    assert destination.calls == [("portal-a", ["a1"])]
