"""Portals with nothing to do wait unstarted (engine/delivery/host.py, "Dormant portals")."""

from __future__ import annotations

import asyncio

import pytest

from engine.delivery.host import QUIET_BEFORE_SLEEP_S, MailboxHost
from engine.errors import NotFoundError
from engine.routing.portal_router import PortalRouter
from tests.engine.conftest import HostKit, eventually
from tests.standins.portal import PortalStandIn


async def test_an_idle_portal_waits_unstarted_and_a_message_starts_it(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    assert host.portal_ids == ["p1", "p2"]
    assert host.is_dormant("p1") and host.is_dormant("p2")
    assert host.started("p1") is None
    assert (await host.gauges())["p1"] == (0, 0, 0)
    assert host.routing_gauges()["p1"] == ({}, 0)

    await host.append([kit.record("42", 1)])
    assert not host.is_dormant("p1") and host.is_dormant("p2")
    await kit.advance_when_waiting(0.002)
    events = await portal.wait_for_events(2)
    assert [e["type"] for e in events] == ["dialog.queued", "message.received"]


async def test_a_portal_with_an_open_dialog_or_an_operator_online_starts_with_the_host(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    await kit.dialog(host)  # p1: a dialog waits for an operator
    await (await host.router("p2")).set_operator("anna", "online", True)
    await kit.close_host(host)

    again = await kit.host(kit.config(portal), kit.config(other))
    assert not again.is_dormant("p1"), "its open dialog has timers and a queue"
    assert not again.is_dormant("p2"), "an operator online is routed to at once"
    assert again.routing_gauges()["p2"] == ({}, 1)


async def test_callers_at_the_same_time_start_a_dormant_portal_once(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal))
    routers = await asyncio.gather(*(host.router("p1") for _ in range(5)))
    assert all(router is routers[0] for router in routers)
    assert host.started("p1") is not None


async def test_a_dormant_portal_reconfigured_or_removed_before_it_starts(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    await host.configure([kit.config(portal, linger_ms=0), kit.config(other)])
    assert host.is_dormant("p1")
    hosted = await host.portal("p1")
    assert hosted.mailbox.portal.linger_ms == 0, "it starts with the config it was given last"

    await host.configure([kit.config(portal)])
    assert host.portal_ids == ["p1"]
    with pytest.raises(NotFoundError):
        await host.router("p2")


async def test_a_dormant_portal_wakes_from_what_it_kept_without_reading_its_store_again(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal))
    router = await host.router("p1")
    await router.set_operator("anna", "offline", False)  # known, not online: still idle
    await kit.close_host(host)

    again = await kit.host(kit.config(portal))
    assert again.is_dormant("p1")
    store = again._store.store  # the host's own connection (no seam to watch it otherwise)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    await again.append([kit.record("42", 1)])
    hosted = again.started("p1")
    assert hosted is not None
    assert "anna" in hosted.router.dispatcher.board.operators, "kept from when it fell asleep"
    await eventually(
        lambda: len(hosted.router.dispatcher.board.open_by_ref) == 1, what="the message routed"
    )
    assert not [s for s in statements if "FROM dialogs WHERE closed = 0" in s]


async def test_a_portal_removed_while_it_wakes_is_stopped_once_started(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    waking = asyncio.create_task(host.router("p1"))
    await asyncio.sleep(0)  # it is starting: neither dormant nor started
    assert not host.is_dormant("p1") and host.started("p1") is None
    await host.configure([kit.config(other)])
    await waking
    assert host.portal_ids == ["p2"] and host.started("p1") is None


# -- falling asleep again (engine/delivery/host.py, "Dormant portals") ----------------------


async def started_quiet(host: MailboxHost, portal_id: str) -> PortalRouter:
    """The portal started by a call, once its first read of the inbox is done."""
    router = await host.router(portal_id)
    hosted = host.started(portal_id)
    assert hosted is not None
    await eventually(lambda: hosted.quiet, what=f"{portal_id} quiet after its start")
    return router


async def test_a_portal_whose_dialog_closed_falls_asleep_once_quiet_and_wakes_for_the_next(
    kit: HostKit, portal: PortalStandIn
) -> None:
    portal.now = kit.clock.now  # the test moves the engine's clock by a quarter of an hour
    host = await kit.host(kit.config(portal))
    router = await host.router("p1")
    await router.set_operator("anna", "online", True)
    dialog = await kit.dialog(host)
    await router.finish(dialog.dialog_id, None)
    await router.set_operator("anna", "offline", False)
    hosted = host.started("p1")
    assert hosted is not None
    await kit.pump(lambda: bool(portal.of_types("dialog.closed")) and hosted.mailbox.idle, 0.002)

    await kit.clock.advance(QUIET_BEFORE_SLEEP_S - 1)
    assert await host.sleep_quiet() == [], "asked for too recently"
    await kit.clock.advance(1)
    assert await host.sleep_quiet() == ["p1"]
    assert host.is_dormant("p1") and host.started("p1") is None
    assert host.portal_ids == ["p1"]

    await host.append([kit.record("42", int(kit.clock.now() * 1000))])
    woken = host.started("p1")
    assert woken is not None and woken.router is not router
    assert "anna" in woken.router.dispatcher.board.operators, "kept while it slept"
    await kit.pump(lambda: len(portal.of_types("dialog.queued")) == 2, step_s=0.002)
    assert len(portal.messages()) == 2


async def test_a_portal_with_something_to_do_stays_started(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    await kit.dialog(host)  # p1: an open dialog
    await (await host.router("p2")).set_operator("boris", "online", True)  # p2: at work
    await kit.clock.advance(2 * QUIET_BEFORE_SLEEP_S)
    assert await host.sleep_quiet() == []
    assert host.started("p1") is not None and host.started("p2") is not None


async def test_a_portal_asked_for_while_it_is_checked_stays_started(
    kit: HostKit, portal: PortalStandIn
) -> None:
    """The clock does not move: the ask is told by its count, not its time."""
    host = await kit.host(kit.config(portal))
    router = await started_quiet(host, "p1")
    await kit.clock.advance(QUIET_BEFORE_SLEEP_S)
    sleeping = asyncio.create_task(host.sleep_quiet())
    await asyncio.sleep(0)  # it reads the store
    assert await host.router("p1") is router
    assert await sleeping == []
    assert host.started("p1") is not None


async def test_callers_while_a_portal_falls_asleep_wait_and_start_it_again(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal))
    router = await started_quiet(host, "p1")
    await kit.clock.advance(QUIET_BEFORE_SLEEP_S)
    sleeping = asyncio.create_task(host.sleep_quiet())
    while host.started("p1") is not None:  # step by step, to come while it stops its parts
        await asyncio.sleep(0)
    assert not host.is_dormant("p1"), "came while it falls asleep"
    again = await asyncio.gather(host.router("p1"), host.router("p1"))
    assert await sleeping == ["p1"]
    assert again[0] is again[1] and again[0] is not router
    assert host.started("p1") is not None and not host.is_dormant("p1")


async def test_a_portal_removed_while_it_falls_asleep_is_not_served(
    kit: HostKit, portal: PortalStandIn
) -> None:
    other = await kit.portal("p2")
    host = await kit.host(kit.config(portal), kit.config(other))
    await started_quiet(host, "p1")
    await kit.clock.advance(QUIET_BEFORE_SLEEP_S)
    sleeping = asyncio.create_task(host.sleep_quiet())
    while host.started("p1") is not None:
        await asyncio.sleep(0)
    await host.configure([kit.config(other)])
    assert await sleeping == ["p1"]
    assert host.portal_ids == ["p2"]
    with pytest.raises(NotFoundError):
        await host.router("p1")
