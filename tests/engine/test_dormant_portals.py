"""Portals with nothing to do wait unstarted (engine/delivery/host.py, "Dormant portals")."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import NotFoundError
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
    assert (await host.gauges())["p1"] == (0, 0)
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
