"""Order across channel actors: watermarks hold a message until every channel actor has
handed over everything older, so a chat's webhooks that reached different actors join the
dialog's stream in the order they were received, each dialog's in the channel's order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from engine.delivery.host import MailboxHost
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.handoff import Watermarks
from engine.store.records import OutboxRecord
from tests.engine.conftest import HostKit, eventually
from tests.standins.portal import PortalStandIn


class Sources:
    """What ``Watermarks`` asks silent channel actors; answers scripted per source."""

    def __init__(self) -> None:
        self.marks: dict[int, float] = {}
        self.asked: list[int] = []
        self.down: set[int] = set()

    async def pull(self, source: int) -> float:
        self.asked.append(source)
        await asyncio.sleep(0)
        if source in self.down:
            raise ConnectionError(f"channel actor {source} is restarting")
        return self.marks[source]


async def test_nothing_is_released_until_every_source_has_spoken() -> None:
    marks = Watermarks(2, Sources().pull)
    assert marks.release_before() == float("-inf")
    marks.advance(0, 10.0)
    assert marks.release_before() == float("-inf")
    marks.advance(1, 7.0)
    assert marks.release_before() == 7.0
    marks.advance(1, 5.0)  # a mark never goes back
    assert marks.release_before() == 7.0


async def test_a_silent_source_is_asked_and_a_dead_one_left_out_after_the_give_up() -> None:
    sources = Sources()
    sources.marks = {0: 20.0, 1: 30.0}
    marks = Watermarks(2, sources.pull, give_up_s=0.05, pull_after_s=0.001)
    marks.advance(0, 5.0)

    await marks.settle(10.0)
    assert sources.asked == [0, 1] and marks.release_before() == 20.0

    sources.down.add(1)
    marks.advance(0, 25.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while marks.release_before() < 40.0:  # source 1 stays at 30 until it is left out
        assert loop.time() < deadline, "the dead source was never left out"
        await marks.settle(40.0)
        if marks.release_before() == 25.0:
            break
    assert marks.release_before() == 25.0
    marks.advance(1, 50.0)  # back: it counts again
    assert marks.release_before() == 25.0


@pytest.fixture
async def sources() -> Sources:
    scripted = Sources()
    scripted.marks = {0: 0.0, 1: 0.0}  # asked, they say nothing has moved
    return scripted


@pytest.fixture
async def two_sources(
    kit: HostKit, portal: PortalStandIn, sources: Sources
) -> AsyncIterator[MailboxHost]:
    """A host fed by two channel actors, as a portal actor is."""
    host = MailboxHost(
        kit.store_path,
        kit.clock,
        HttpTransport(kit.session, kit.clock),
        EngineSealer(kit.engine_key),
        kit.channels,
        kit.session,
        watermarks=Watermarks(2, sources.pull, give_up_s=30.0),
    )
    kit.hosts.append(host)
    await host.set_rules(kit.rules)
    await host.configure([kit.config(portal, linger_ms=0)])
    yield host


def at(record: OutboxRecord, received_at: float) -> OutboxRecord:
    return replace(record, received_at=received_at)


async def test_a_message_handed_over_late_by_another_actor_still_goes_first(
    kit: HostKit, two_sources: MailboxHost, portal: PortalStandIn, sources: Sources
) -> None:
    host = two_sources
    t = kit.clock.now()
    # Actor 1 received order 1 at t, actor 0 order 2 at t+1; actor 0 hands over first.
    await host.append([at(kit.record("42", 2), t + 1)], source=0, watermark=t + 2)
    await eventually(lambda: 1 in sources.asked, what="actor 1 asked for its watermark")
    assert portal.events == []  # held: actor 1 may still have something older
    await host.append([at(kit.record("42", 1), t)], source=1, watermark=t + 2)

    events = await portal.wait_for_events(2, "message.")
    assert [e["data"]["order_key"] for e in events] == [1, 2]


async def test_rows_below_every_watermark_go_at_once_and_newer_ones_wait(
    kit: HostKit, two_sources: MailboxHost, portal: PortalStandIn, sources: Sources
) -> None:
    host = two_sources
    t = kit.clock.now()
    await host.append([at(kit.record("7", 1), t)], source=1, watermark=t + 0.5)
    await host.append([at(kit.record("8", 1), t + 1)], source=0, watermark=t + 2)

    await portal.wait_for_events(1, "message.")
    await eventually(lambda: 1 in sources.asked, what="actor 1 asked for its watermark")
    assert [e["data"]["dialog_key"] for e in portal.messages()] == ["7"]
    host.watermarks.advance(1, t + 2)  # as a hand-off or an answer to a pull would
    (await host.router("p1")).wake()
    await eventually(lambda: len(portal.messages()) == 2, what="the held message")
    assert [e["data"]["dialog_key"] for e in portal.messages()] == ["7", "8"]
