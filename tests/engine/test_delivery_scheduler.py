"""The host's delivery scheduler (``engine.delivery.scheduler``) with many portals: work
shared across portals (one round, one transaction), a bound on POSTs in flight, failures of
a shared write kept to their member, idle portals without tasks, offers settled only once
their acknowledgement is written, and stream counts changed on a running host.

Real parts only: the SQLite outbox file, the router, sealing, aiohttp portals on 127.0.0.1.
Faults come from the edges: the portal's answers, and a trigger in the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from engine.config import PortalConfig
from engine.delivery.host import HostedPortal, MailboxHost
from tests.engine.conftest import HostKit, eventually
from tests.engine.test_mailbox import keys_on_streams, routed, texts
from tests.standins.portal import PortalStandIn, ScriptedFailure


@dataclass
class HeldEndpoint:
    """A portal endpoint that takes requests and answers 204 only as permits are released;
    it counts what it holds at once."""

    url: str = ""
    permits: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    received: list[str] = field(default_factory=list)
    holding: int = 0
    most_held: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append(request.headers["openlines-portal-id"])
        self.holding += 1
        self.most_held = max(self.most_held, self.holding)
        try:
            await self.permits.acquire()
        finally:
            self.holding -= 1
        return web.Response(status=204)


@pytest.fixture
async def held() -> AsyncIterator[HeldEndpoint]:
    endpoint = HeldEndpoint()
    app = web.Application()
    app.router.add_post("/openlines", endpoint.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}/openlines"
    try:
        yield endpoint
    finally:
        for _ in range(1000):
            endpoint.permits.release()
        await runner.cleanup()


def quiet_portals(
    kit: HostKit, keys: PortalStandIn, count: int, **overrides: object
) -> list[PortalConfig]:
    """``count`` portals q0, q1, ... sealing to one stand-in's key (the held endpoint does
    not open what it receives)."""
    return [kit.config(keys, id=f"q{n}", **overrides) for n in range(count)]


def lingering(hosted: HostedPortal | None) -> bool:
    """Started, with its one stream's two events waiting for the linger."""
    return hosted is not None and hosted.mailbox.pending == [2]


async def every_stream_lingering(host: MailboxHost, portals: list[PortalConfig]) -> None:
    """Each portal's one stream holds its new dialog's ``dialog.queued`` and message and
    waits for its linger (all of them on the same clock time)."""
    await eventually(
        lambda: all(lingering(host.started(p.id)) for p in portals),
        what="every portal's stream lingering",
    )


def rounds(host: MailboxHost) -> float:
    return host.counters.value("openlines_delivery_rounds_total")


async def test_the_batches_of_many_quiet_portals_are_formed_in_one_round(
    kit: HostKit, portal: PortalStandIn, held: HeldEndpoint
) -> None:
    portals = quiet_portals(kit, portal, 40, endpoint=held.url, linger_ms=10)
    host = await kit.host(*portals)
    await host.append([kit.record("42", 1, portal_id=p.id) for p in portals])
    await every_stream_lingering(host, portals)
    assert rounds(host) == 0

    linger_ends = kit.clock.now() + 0.01
    await eventually(lambda: kit.clock.waits_until(linger_ends), what="the linger's timer")
    await kit.clock.advance(0.01)
    await eventually(lambda: len(held.received) == 40, what="every portal's batch posted")
    assert sorted(held.received) == sorted(p.id for p in portals)
    assert rounds(host) == 1  # 40 claims, each counting its first attempt: one transaction
    assert len(kit.reader().open_batches("q7")) == 1

    for _ in portals:
        held.permits.release()
    delivered = host.counters.value
    await eventually(
        lambda: (
            sum(delivered("openlines_batches_delivered_total", portal=p.id) for p in portals) == 40
        )
    )
    assert rounds(host) < 1 + 40  # acknowledgements are written in groups too
    await eventually(lambda: kit.reader().depth("q7") == 0, what="the acks")


async def test_posts_in_flight_are_bounded_per_host_and_every_portal_gets_its_turn(
    kit: HostKit, portal: PortalStandIn, held: HeldEndpoint
) -> None:
    portals = quiet_portals(kit, portal, 30, endpoint=held.url, linger_ms=0)
    host = await kit.host(*portals, max_in_flight=8)
    await host.append([kit.record("42", 1, portal_id=p.id) for p in portals])
    await eventually(lambda: len(held.received) == 8)
    assert held.holding == 8

    for _ in portals:
        held.permits.release()
    await eventually(lambda: len(held.received) == 30, what="every portal served")
    assert held.most_held == 8
    assert sorted(held.received) == sorted(p.id for p in portals)


async def test_a_shared_write_that_fails_is_retried_member_by_member(
    kit: HostKit, portal: PortalStandIn
) -> None:
    others = [await kit.portal(f"p{n}") for n in (2, 3, 4)]
    configs = [kit.config(s, linger_ms=10) for s in (portal, *others)]
    host = await kit.host(*configs)
    with sqlite3.connect(kit.store_path) as db:
        db.execute(
            "CREATE TRIGGER refuse_p3 BEFORE UPDATE OF batch_id ON events"
            " WHEN NEW.portal_id = 'p3' AND NEW.batch_id IS NOT NULL"
            " BEGIN SELECT RAISE(ABORT, 'p3 cannot be claimed'); END"
        )
    await host.append([kit.record("42", 1, portal_id=c.id) for c in configs])
    await every_stream_lingering(host, configs)
    await kit.clock.advance(0.01)  # one round claims them all: it fails for p3's sake

    healthy = [portal, others[0], others[2]]
    for standin in healthy:
        assert texts(await standin.wait_for_events(2)) == ["42 says 1"]

    def refused() -> float:
        return host.counters.value("openlines_rejected_total", reason="batch_error")

    await eventually(lambda: refused() == 1, what="p3's claim failing alone")
    assert others[1].attempts == 0
    with sqlite3.connect(kit.store_path) as db:
        db.execute("DROP TRIGGER refuse_p3")
    await kit.advance_when_waiting(1.0)  # a failed step is tried again a second later
    events = await others[1].wait_for_events(2)
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "dialog.queued"),
        (2, "message.received"),
    ]
    assert refused() == 1


async def test_an_acknowledgement_that_cannot_be_written_is_written_later_not_resent(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    with sqlite3.connect(kit.store_path) as db:
        db.execute(
            "CREATE TRIGGER keep_batches BEFORE DELETE ON batches"
            " BEGIN SELECT RAISE(ABORT, 'batches cannot leave'); END"
        )
    await host.append([kit.record("42", 1)])
    await portal.wait_for_events(2)

    def errors() -> float:
        return host.counters.value("openlines_rejected_total", reason="delivery_error")

    await eventually(lambda: errors() == 1 and kit.clock.sleepers == 1, what="a failed ack")
    assert kit.reader().depth("p1") == 2
    with sqlite3.connect(kit.store_path) as db:
        db.execute("DROP TRIGGER keep_batches")
    await kit.clock.advance(1.0)
    await eventually(lambda: kit.reader().depth("p1") == 0, what="the ack written")
    assert portal.attempts == 1  # the portal had it once: the ack was retried, not the POST
    await eventually(lambda: host.counters.value("openlines_delivered_total", portal="p1") == 2)


async def test_idle_portals_cost_no_task(kit: HostKit, portal: PortalStandIn) -> None:
    before = len(asyncio.all_tasks())
    host = await kit.host(*quiet_portals(kit, portal, 500))
    assert len(host.portal_ids) == 500
    assert len(asyncio.all_tasks()) == before


async def test_an_offers_accept_timeout_starts_once_its_ack_is_written(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    router = await host.router("p1")
    await router.set_operator("op-a", "online", None)
    portal.failures.append(ScriptedFailure(503, "30"))
    await host.append([kit.record("42", 1)])
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers >= 1)
    dialog = await kit.dialog(host)
    assert dialog.state == "offered"
    assert dialog.offer_seen_at is None  # the portal has not got the offer: no timer yet

    await kit.clock.advance(30)
    await portal.wait_for_events(3)
    acked_by = kit.clock.now()
    board = router.dispatcher.board
    await eventually(
        lambda: board.dialogs[dialog.dialog_id].offer_seen_at is not None,
        what="the router told of the offer",
    )
    assert board.dialogs[dialog.dialog_id].offer_seen_at == acked_by
    assert kit.reader().depth("p1") == 0  # told after the acknowledgement was written


async def test_a_stream_count_changed_on_a_running_host_sends_open_batches_first(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    chats = keys_on_streams(4, per_stream=1)
    portal.failures.append(ScriptedFailure(503, "60"))
    await host.append([kit.record(chat, 1) for chat in chats])
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    (waiting,) = kit.reader().open_batches("p1")

    await host.configure([kit.config(portal, linger_ms=0, queue="parallel", streams=4)])
    await host.append([kit.record(chat, 2) for chat in chats])
    await routed(kit)
    assert portal.attempts == 1  # nothing newer goes before the open batch
    await kit.advance_when_waiting(60)
    events = await portal.wait_for_events(12)

    first = portal.batches[0]
    assert (first["batch_id"], first["attempt"]) == (waiting.batch_id, 2)
    assert sorted(e["seq"] for e in events) == list(range(1, 13))
    for chat in chats:
        said = [e["data"]["order_key"] for e in events if e["data"].get("dialog_key") == chat]
        assert said == [1, 2], chat
    assert {batch["stream"] for batch in portal.batches[1:]} == {0, 1, 2, 3}
