"""Portal mailboxes end to end without Ray: a real SQLite outbox, the real portal router,
sealed batches to a real portal stand-in on 127.0.0.1, and time only from the manual clock."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from engine.clock import ManualClock
from engine.delivery.host import MailboxHost
from engine.events import DialogView
from engine.metrics import Counters
from engine.store.records import dialog_hash, dialog_ref
from tests.engine.conftest import LINE_ID, TG_CONNECTOR, HostKit, eventually
from tests.standins.portal import PortalStandIn, ScriptedFailure

Event = dict[str, Any]


def texts(events: list[Event]) -> list[str]:
    """What the customers wrote, in delivery order (engine events have no text)."""
    return [e["data"]["content"]["text"] for e in events if e["type"] == "message.received"]


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


def by_dialog(events: list[Event]) -> dict[str, list[Event]]:
    """Each dialog's events in delivery order, by dialog id."""
    found: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        found[event["dialog"]["id"]].append(event)
    return dict(found)


def view(
    event: Event,
    chat: str,
    state: str = "waiting",
    operator_id: str | None = None,
    offered_to: tuple[str, ...] = (),
) -> DialogView:
    """The ``DialogView`` a Telegram chat's event must carry at its place in the stream: the
    contact the dialog opened with (``event`` is its first) stays on every later event."""
    contact_id = event["dialog"]["contact_id"]
    assert contact_id.startswith("cnt_")
    return DialogView(
        id=event["dialog"]["id"],
        line_id=LINE_ID,
        connector_id=TG_CONNECTOR,
        channel="telegram",
        customer_id=chat,
        state=state,  # type: ignore[arg-type]
        operator_id=operator_id,
        offered_to=offered_to,
        contact_id=contact_id,
    )


def shown(event: Event) -> DialogView:
    return DialogView.model_validate(event["dialog"])


def assert_new_waiting_dialogs(events: list[Event], chats: list[str]) -> None:
    """Every chat's stream starts with ``dialog.queued`` (a new dialog) and every event shows
    the dialog waiting for an operator (all operators are offline)."""
    streams = by_dialog(events)
    assert len(streams) == len(chats)
    for stream in streams.values():
        first = stream[0]
        assert first["type"] == "dialog.queued"
        assert first["data"]["reason"] == "new"
        assert [e["type"] for e in stream[1:]] == ["message.received"] * (len(stream) - 1)
        chat = stream[1]["data"]["dialog_key"]
        assert chat in chats
        for event in stream:
            assert shown(event) == view(first, chat)


async def routed(kit: HostKit, portal_id: str = "p1") -> None:
    """Wait until every stored message has joined its dialog's stream."""
    reader = kit.reader()
    await eventually(lambda: reader.inbox(portal_id, 1) == [], what="the inbox routed")


def keys_on_streams(streams: int, per_stream: int) -> list[str]:
    """Dialog keys whose dialogs cover every stream ``per_stream`` times."""
    chosen: dict[int, list[str]] = defaultdict(list)
    number = 100
    while any(len(chosen[s]) < per_stream for s in range(streams)):
        key = str(number)
        stream = dialog_hash(dialog_ref(TG_CONNECTOR, key)) % streams
        if len(chosen[stream]) < per_stream:
            chosen[stream].append(key)
        number += 1
    return [key for stream in range(streams) for key in chosen[stream]]


async def test_a_batch_waits_for_the_linger_then_arrives_sealed_and_ordered(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=50))
    appended_at = kit.clock.now()
    accepted = await host.append(
        [kit.record("42", 1), kit.record("42", 2), kit.record("7", 1), kit.record("42", 1)]
    )
    assert accepted == [True, True, True, False]  # the channel's retry is not stored twice

    await eventually(lambda: kit.clock.sleepers == 1, what="the linger")
    await kit.clock.advance(0.049)
    assert kit.clock.sleepers == 1
    assert portal.attempts == 0

    await kit.clock.advance(0.002)
    await portal.wait_for_events(5)
    (batch,) = portal.batches
    assert portal.rejected == []
    assert batch["portal_id"] == "p1"
    assert batch["attempt"] == 1
    assert batch["sent_at"] == kit.clock.now()
    events = batch["events"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert types(events) == [
        "dialog.queued",
        "message.received",
        "message.received",
        "dialog.queued",
        "message.received",
    ]
    assert texts(events) == ["42 says 1", "42 says 2", "7 says 1"]
    queued, first, second, other_queued, other = events
    assert first["dialog"]["id"] == second["dialog"]["id"] != other["dialog"]["id"]
    assert queued["dialog"]["id"] == first["dialog"]["id"]
    assert other_queued["dialog"]["id"] == other["dialog"]["id"]
    # one append of three messages for two chats opens exactly two dialogs, in queue order
    assert queued["data"] == {"reason": "new", "position": 1, "opens_at": None}
    assert other_queued["data"] == {"reason": "new", "position": 2, "opens_at": None}
    assert queued["occurred_at"] == other_queued["occurred_at"] == appended_at
    assert_new_waiting_dialogs(events, ["42", "7"])
    assert host.counters.value("openlines_dialogs_opened_total", portal="p1") == 2
    await eventually(lambda: host.counters.value("openlines_delivered_total", portal="p1") == 5)
    assert (await host.gauges())["p1"] == (0, 0, 0)


async def test_every_event_shows_the_dialog_as_it_stood_at_its_place(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    router = await host.router("p1")
    await router.set_operator("op-a", "online", None)
    await host.append([kit.record("42", 1)])
    queued, offered, message = await portal.wait_for_events(3)
    assert types([queued, offered, message]) == [
        "dialog.queued",
        "dialog.offered",
        "message.received",
    ]
    # nobody waited before it: decided at once, so its first message shows the offer
    assert shown(queued) == view(queued, "42")
    assert shown(offered) == shown(message) == view(queued, "42", "offered", offered_to=("op-a",))
    assert offered["data"]["operator_ids"] == ["op-a"]
    assert offered["data"]["accept_timeout_s"] == 60.0

    await router.accept(queued["dialog"]["id"], "op-a")
    await host.append([kit.record("42", 2)])
    assigned, later = (await portal.wait_for_events(5))[3:]
    assert assigned["type"] == "dialog.assigned"
    assert assigned["data"] == {"operator_id": "op-a", "via": "accept", "decision_id": None}
    assert shown(assigned) == shown(later) == view(queued, "42", "assigned", "op-a")
    assert texts([later]) == ["42 says 2"]
    assert [e["seq"] for e in portal.events] == [1, 2, 3, 4, 5]


async def test_a_message_put_back_in_order_shows_the_dialog_of_its_slot(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=1000))
    router = await host.router("p1")
    await router.set_operator("op-a", "online", None)
    await host.append([kit.record("42", 2)])  # the later message's webhook came first
    await eventually(lambda: kit.clock.sleepers == 1, what="the linger")
    dialog = await kit.dialog(host)
    await router.accept(dialog.dialog_id, "op-a")
    await host.append([kit.record("42", 1)])
    await routed(kit)

    await kit.clock.advance(1)
    events = await portal.wait_for_events(5)
    assert types(events) == [
        "dialog.queued",
        "dialog.offered",
        "message.received",
        "dialog.assigned",
        "message.received",
    ]
    assert texts(events) == ["42 says 1", "42 says 2"]
    # the first message written sits where the dialog was offered; the second, stored
    # first, now sits after the assignment and names the operator
    assert [shown(e) for e in events] == [
        view(events[0], "42"),
        view(events[0], "42", "offered", offered_to=("op-a",)),
        view(events[0], "42", "offered", offered_to=("op-a",)),
        view(events[0], "42", "assigned", "op-a"),
        view(events[0], "42", "assigned", "op-a"),
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]


async def test_a_dialog_is_put_back_in_the_order_the_customer_wrote(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=10))
    # webhooks of one chat arrived over parallel connections, out of order
    await host.append([kit.record("42", 3), kit.record("7", 2), kit.record("42", 1)])
    await host.append([kit.record("7", 1), kit.record("42", 2)])
    await routed(kit)  # both appends in the streams before the linger ends
    await kit.advance_when_waiting(0.01)
    events = await portal.wait_for_events(7)
    assert len(portal.batches) == 1
    assert texts(events) == ["42 says 1", "7 says 1", "42 says 2", "7 says 2", "42 says 3"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert types(events) == [
        "dialog.queued",
        "message.received",
        "dialog.queued",
        "message.received",
        "message.received",
        "message.received",
        "message.received",
    ]
    assert_new_waiting_dialogs(events, ["42", "7"])


async def test_a_sequential_queue_has_one_batch_in_flight(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, batch_max_events=2, linger_ms=0))
    portal.failures.append(ScriptedFailure(503, "30"))
    await host.append([kit.record("42", n) for n in range(1, 6)])

    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    (in_flight,) = kit.reader().open_batches("p1")
    assert [e.kind for e in in_flight.events] == ["dialog.queued", "message.received"]
    assert (await host.gauges())["p1"] == (6, 0, 0)
    await kit.clock.advance(29)
    assert portal.attempts == 1  # the next batch does not overtake the failing one

    await kit.clock.advance(1)
    events = await portal.wait_for_events(6)
    assert [len(batch["events"]) for batch in portal.batches] == [2, 2, 2]
    assert portal.batches[0]["batch_id"] == in_flight.batch_id
    assert portal.batches[0]["attempt"] == 2
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert texts(events) == [f"42 says {n}" for n in range(1, 6)]
    assert_new_waiting_dialogs(events, ["42"])
    assert portal.attempts == 4


async def test_retry_after_is_honoured_on_the_clock(kit: HostKit, portal: PortalStandIn) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, retry_initial_s=0.05))
    portal.failures.append(ScriptedFailure(503, "30"))
    await host.append([kit.record("42", 1)])

    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    await kit.clock.advance(29.9)
    assert kit.clock.sleepers == 1  # still waiting: backoff alone would have retried by now
    assert portal.attempts == 1

    await kit.clock.advance(0.2)
    events = await portal.wait_for_events(2)
    assert portal.attempts == 2
    assert portal.batches[0]["attempt"] == 2
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "dialog.queued"),
        (2, "message.received"),
    ]
    assert host.counters.value("openlines_retried_total", portal="p1") == 1
    stored = kit.reader()
    await eventually(lambda: stored.depth("p1") == 0, what="the ack")  # it follows the 2xx
    assert stored.open_batches("p1") == []


async def test_a_portal_down_for_a_day_sends_everything_to_dead_letters(
    kit: HostKit, portal: PortalStandIn
) -> None:
    config = kit.config(portal, linger_ms=0, ttl_s=86_400, retry_initial_s=60, retry_max_s=3600)
    host = await kit.host(config)
    portal.failures.extend(ScriptedFailure(500) for _ in range(500))
    started = kit.clock.now()
    records = [kit.record("42", 1), kit.record("7", 1), kit.record("42", 2)]
    await host.append(records)

    def dead() -> float:
        return host.counters.value("openlines_dead_lettered_total", portal="p1")

    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    for _ in range(60):
        await eventually(lambda: kit.clock.sleepers == 1 or dead() == 5)
        if dead() == 5:
            break
        assert (await host.gauges())["p1"] == (5, 0, 0)  # nothing lost on the way
        await kit.clock.advance(3600)
    assert dead() == 5
    assert kit.clock.now() - started >= 86_400

    letters = await host.dead_letters("p1", "req-1", limit=10, after_event_id=None)
    assert [d.kind for d in letters] == [
        "dialog.queued",
        "message.received",
        "dialog.queued",
        "message.received",
        "message.received",
    ]
    messages = [d for d in letters if d.kind == "message.received"]
    assert [d.event_id for d in messages] == [r.event_id for r in records]
    assert [d.seq for d in letters] == [1, 2, 3, 4, 5]
    for letter in letters:
        assert letter.reason.startswith("not delivered within ttl_s=86400 after ")
        assert letter.dead_at - letter.received_at >= 86_400
        assert orjson.loads(letter.dialog_json)["state"] == "waiting"
    assert portal.batches == []
    assert portal.attempts >= 24  # retried through the day, every 30-60 min at the cap
    assert host.counters.value("openlines_retried_total", portal="p1") == portal.attempts
    assert (await host.gauges())["p1"] == (0, 5, 0)
    assert kit.reader().open_batches("p1") == []


async def test_best_effort_events_get_one_attempt_guaranteed_ones_are_retried(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, retry_initial_s=1, retry_max_s=1))
    portal.failures.append(ScriptedFailure(500))
    await host.append(
        [
            kit.record("42", 1),
            kit.record("42", 2, delivery="best_effort", text="typing"),
            kit.record("42", 3),
        ]
    )
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    assert host.counters.value("openlines_dropped_total", portal="p1") == 1
    (retrying,) = kit.reader().open_batches("p1")
    assert [e.seq for e in retrying.events] == [1, 2, 3]  # the dropped one had none

    await kit.clock.advance(1)
    events = await portal.wait_for_events(3)
    assert types(events) == ["dialog.queued", "message.received", "message.received"]
    assert texts(events) == ["42 says 1", "42 says 3"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    stored = kit.reader()
    await eventually(lambda: stored.depth("p1") == 0, what="the ack")
    assert (await host.gauges())["p1"] == (0, 0, 0)  # dropped, not dead-lettered


async def test_a_best_effort_event_that_gets_through_has_no_seq(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    await host.append([kit.record("42", 1, delivery="best_effort"), kit.record("42", 2)])
    events = await portal.wait_for_events(3)
    assert [(e["type"], e["seq"], e["best_effort"]) for e in events] == [
        ("dialog.queued", 1, False),  # the dialog a best-effort message opened is not
        ("message.received", None, True),
        ("message.received", 2, False),
    ]


async def test_a_best_effort_portal_drops_a_failed_batch_at_once(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, delivery="best_effort"))
    portal.failures.append(ScriptedFailure(503, "5"))
    await host.append([kit.record("42", 1), kit.record("42", 2)])
    await eventually(lambda: host.counters.value("openlines_dropped_total", portal="p1") == 3)
    await kit.clock.advance(60)  # past the Retry-After: nothing is tried again
    assert portal.attempts == 1
    assert (await host.gauges())["p1"] == (0, 0, 0)

    await host.append([kit.record("42", 3)])
    (event,) = await portal.wait_for_events(1)
    assert texts([event]) == ["42 says 3"]  # the dialog stayed open: no second dialog.queued
    assert shown(event) == view(event, "42")


async def test_a_parallel_queue_keeps_dialog_order_with_batches_in_flight_together(
    kit: HostKit, portal: PortalStandIn
) -> None:
    streams = 4
    config = kit.config(portal, queue="parallel", streams=streams, batch_max_events=3, linger_ms=0)
    host = await kit.host(config)
    dialogs = keys_on_streams(streams, per_stream=2)
    for _ in range(streams):
        portal.failures.append(ScriptedFailure(503, "10"))
    await host.append([kit.record(key, n) for n in range(1, 5) for key in dialogs])

    reader = kit.reader()

    def all_waiting_for_retry() -> bool:
        batches = reader.open_batches("p1")
        return (
            portal.attempts == streams
            and len(batches) == streams
            and all(batch.next_attempt_at > kit.clock.now() for batch in batches)
            and kit.clock.sleepers == 1  # one timer for the host, not a task per stream
        )

    await eventually(all_waiting_for_retry, what="every stream's batch failed once")
    in_flight = reader.open_batches("p1")
    assert sorted(batch.stream for batch in in_flight) == list(range(streams))

    await kit.clock.advance(10)
    events = await portal.wait_for_events(len(dialogs) * 5)
    assert len(events) == len(dialogs) * 5
    assert sorted(e["seq"] for e in events) == list(range(1, len(events) + 1))
    streams_of: dict[str, set[int]] = defaultdict(set)
    for batch in portal.batches:
        for event in batch["events"]:
            streams_of[event["dialog"]["id"]].add(batch["stream"])
    assert_new_waiting_dialogs(events, dialogs)
    for stream in by_dialog(events).values():
        key = stream[1]["data"]["dialog_key"]
        assert texts(stream) == [f"{key} says {n}" for n in range(1, 5)]
        assert len(streams_of[stream[0]["dialog"]["id"]]) == 1
    assert len({batch["stream"] for batch in portal.batches}) == streams


async def test_a_restart_resends_the_open_batch_with_the_same_ids(
    kit: HostKit, portal: PortalStandIn
) -> None:
    config = kit.config(portal, linger_ms=0)
    first_host = await kit.host(config)
    portal.failures.append(ScriptedFailure(503, "60"))
    await first_host.append([kit.record("42", 1), kit.record("42", 2), kit.record("7", 1)])
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    (stored,) = kit.reader().open_batches("p1")
    await kit.close_host(first_host)  # stopped mid-retry

    second_host = await kit.host(config)
    await kit.advance_when_waiting(60)
    events = await portal.wait_for_events(5)
    (batch,) = portal.batches
    assert batch["batch_id"] == stored.batch_id
    assert batch["attempt"] == 2
    assert [e["id"] for e in events] == [e.event_id for e in stored.events]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    # the dialogs as stamped before the restart
    assert [e["dialog"] for e in events] == [orjson.loads(e.dialog_json) for e in stored.events]
    assert_new_waiting_dialogs(events, ["42", "7"])

    await second_host.append([kit.record("42", 3)])
    (later,) = (await portal.wait_for_events(6))[5:]
    assert later["seq"] == 6  # the sequence continues after the restart
    assert later["type"] == "message.received"  # the restarted router knows the open dialog
    assert shown(later) == view(events[0], "42")
    assert len(portal.of_types("dialog.queued")) == 2


async def test_a_restart_delivers_what_was_stored_but_not_batched(
    kit: HostKit, portal: PortalStandIn
) -> None:
    config = kit.config(portal, linger_ms=1000)
    first_host = await kit.host(config)
    await first_host.append([kit.record("42", 1)])
    await eventually(lambda: kit.clock.sleepers == 1)  # lingering when it stops
    await kit.close_host(first_host)

    await kit.host(config)
    await kit.advance_when_waiting(1)
    events = await portal.wait_for_events(2)
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "dialog.queued"),
        (2, "message.received"),
    ]


async def retried(kit: HostKit, standin: PortalStandIn, after_s: float) -> None:
    """Advance the clock to the next retry and wait until the portal saw it."""
    before = standin.attempts
    await kit.advance_when_waiting(after_s)
    await eventually(lambda: standin.attempts > before)


async def test_a_failing_portal_does_not_delay_another(kit: HostKit) -> None:
    failing, healthy = await kit.portal("p1"), await kit.portal("p2")
    failing.failures.extend(ScriptedFailure(500) for _ in range(100))
    host = await kit.host(
        kit.config(failing, linger_ms=0, retry_initial_s=1, retry_max_s=1),
        kit.config(healthy, linger_ms=0),
    )
    await host.append([kit.record("42", 1, portal_id="p1"), kit.record("42", 1, portal_id="p2")])
    await healthy.wait_for_events(1, "message.")
    for n in range(2, 5):
        await retried(kit, failing, after_s=1)
        await host.append([kit.record("42", n, portal_id="p2")])
        await healthy.wait_for_events(n, "message.")
    assert failing.batches == []
    assert failing.attempts >= 4
    assert texts(healthy.events) == [f"42 says {n}" for n in range(1, 5)]
    assert_new_waiting_dialogs(healthy.events, ["42"])
    assert (await host.gauges())["p1"] == (2, 0, 0)


@pytest.fixture
async def hung_endpoint() -> AsyncIterator[tuple[str, asyncio.Event, list[bytes]]]:
    """A portal that takes requests and answers only when released."""
    release = asyncio.Event()
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/openlines", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/openlines", release, received
    finally:
        release.set()
        await runner.cleanup()


async def test_a_hung_portal_does_not_hold_up_another(
    kit: HostKit, hung_endpoint: tuple[str, asyncio.Event, list[bytes]]
) -> None:
    url, release, received = hung_endpoint
    stuck, healthy = await kit.portal("p1"), await kit.portal("p2")
    host = await kit.host(
        kit.config(stuck, endpoint=url, linger_ms=0),
        kit.config(healthy, linger_ms=0),
    )
    await host.append([kit.record("42", 1, portal_id="p1")])
    await eventually(lambda: len(received) == 1)
    await host.append([kit.record("42", 1, portal_id="p2"), kit.record("7", 1, portal_id="p2")])
    await healthy.wait_for_events(4, timeout_s=5)
    assert texts(healthy.events) == ["42 says 1", "7 says 1"]
    assert not release.is_set()


async def test_counters_can_be_shared_by_the_actor(kit: HostKit, portal: PortalStandIn) -> None:
    counters = Counters()
    host = await kit.host(kit.config(portal, linger_ms=0), counters=counters)
    assert host.counters is counters
    await host.append([kit.record("42", 1)])
    await portal.wait_for_events(2)
    await eventually(lambda: counters.value("openlines_batches_delivered_total", portal="p1") == 1)
    assert counters.value("openlines_delivered_total", portal="p1") == 2
    assert counters.value("openlines_dialogs_opened_total", portal="p1") == 1


async def test_mailbox_host_fixture_serves_p1(
    mailbox_host: MailboxHost, portal: PortalStandIn, clock: ManualClock, kit: HostKit
) -> None:
    assert mailbox_host.portal_ids == ["p1"]
    await mailbox_host.append([kit.record("42", 1)])
    await kit.advance_when_waiting(0.002)
    assert texts(await portal.wait_for_events(2)) == ["42 says 1"]


async def test_configure_stops_portals_no_longer_wanted(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    assert host.portal_ids == ["p1", "p2"]
    await host.configure([kit.config(other)])
    assert host.portal_ids == ["p2"]
    kept = kit.record("42", 1, portal_id="p1")
    await host.append([kept])
    await kit.clock.advance(60)
    assert portal.attempts == 0
    # kept, unrouted, for whoever serves p1 next
    assert (await host.gauges())["p1"] == (1, 0, 1)
    assert [row.event_id for row in kit.reader().inbox("p1", 10)] == [kept.event_id]

    await host.configure([kit.config(portal), kit.config(other)])
    await kit.advance_when_waiting(0.002)
    events = await portal.wait_for_events(2)
    assert texts(events) == ["42 says 1"]
    assert_new_waiting_dialogs(events, ["42"])


async def test_a_failed_delivery_step_does_not_end_the_stream(
    kit: HostKit, portal: PortalStandIn
) -> None:
    good = kit.config(portal, linger_ms=0)
    # a key that cannot be sealed to (config validation refuses it; model_copy does not check)
    broken = good.model_copy(update={"public_key": "A" * 43})
    host = await kit.host(broken)
    await host.append([kit.record("42", 1)])

    def failures() -> float:
        return host.counters.value("openlines_rejected_total", reason="delivery_error")

    await eventually(lambda: failures() == 1 and kit.clock.sleepers == 1)
    assert portal.attempts == 0
    await kit.clock.advance(1)
    await eventually(lambda: failures() == 2 and kit.clock.sleepers == 1)

    await host.configure([good])  # the key is fixed: the same stream goes on
    await kit.clock.advance(1)
    events = await portal.wait_for_events(2)
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "dialog.queued"),
        (2, "message.received"),
    ]
    await host.append([kit.record("42", 2)])
    assert texts(await portal.wait_for_events(3)) == ["42 says 1", "42 says 2"]


async def test_after_a_stream_count_change_open_batches_go_before_newer_events(
    kit: HostKit, portal: PortalStandIn
) -> None:
    sequential = kit.config(portal, linger_ms=0)
    first_host = await kit.host(sequential)
    portal.failures.append(ScriptedFailure(503, "60"))
    await first_host.append([kit.record(chat, 1) for chat in ("a", "b", "c", "d", "e")])
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    await kit.close_host(first_host)

    parallel = kit.config(portal, linger_ms=0, queue="parallel", streams=4)
    second_host = await kit.host(parallel)
    await second_host.append([kit.record(chat, 2) for chat in ("a", "b", "c", "d", "e")])
    await kit.advance_when_waiting(60)
    events = await portal.wait_for_events(15)

    messages = [e for e in events if e["type"] == "message.received"]
    for chat in ("a", "b", "c", "d", "e"):
        orders = [e["data"]["order_key"] for e in messages if e["data"]["dialog_key"] == chat]
        assert orders == sorted(orders), chat
    assert_new_waiting_dialogs(events, ["a", "b", "c", "d", "e"])
    assert portal.batches[0]["attempt"] == 2
