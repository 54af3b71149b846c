"""A batch's ``attempt`` counts attempts: counted before each POST, so a batch resent after
the engine stopped mid-POST says a higher number, and retries keep counting across it.

The portal here is a real aiohttp server that opens every attempt the way a portal does
(``PortalSide``) and answers as the test scripts it: fail, hold (take the request and never
answer, as when the engine dies waiting), or accept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiohttp import web

from tests.engine.conftest import HostKit, eventually
from tests.standins.portal import PortalStandIn

Answer = Literal["fail", "hold", "accept"]


class ScriptedPortal:
    """Opens every attempt it gets (``seen``, in arrival order) and answers from ``script``;
    once the script is used up it accepts. ``held`` is set when a request is held."""

    def __init__(self, keys: PortalStandIn) -> None:
        self.keys = keys
        self.script: list[Answer] = []
        self.seen: list[dict[str, Any]] = []
        self.held = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/openlines", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/openlines"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        batch = self.keys.side.open_delivery(request.headers, await request.read())
        answer = self.script.pop(0) if self.script else "accept"
        async with self._arrived:
            self.seen.append(batch)
            self._arrived.notify_all()
        if answer == "hold":
            self.held.set()
            await asyncio.Event().wait()  # never answered; cancelled when the server stops
        return web.Response(status=500 if answer == "fail" else 204)

    async def wait_for(self, attempts: int) -> list[dict[str, Any]]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.seen) >= attempts), 10)
        return self.seen


@pytest.fixture
async def scripted(kit: HostKit) -> AsyncIterator[ScriptedPortal]:
    portal = ScriptedPortal(await kit.portal("p1"))
    await portal.start()
    yield portal
    await portal.stop()


def config_for(kit: HostKit, scripted: ScriptedPortal) -> Any:
    return kit.config(
        scripted.keys, endpoint=scripted.url, linger_ms=0, retry_initial_s=1, retry_max_s=1
    )


async def test_a_batch_resent_after_a_crash_mid_post_says_attempt_2(
    kit: HostKit, scripted: ScriptedPortal
) -> None:
    scripted.script = ["hold"]
    first = await kit.host(config_for(kit, scripted))
    await first.append([kit.record("42", 1)])
    await asyncio.wait_for(scripted.held.wait(), 10)
    (stored,) = kit.reader().open_batches("p1")
    assert stored.attempts == 1  # counted before the POST went out
    await kit.close_host(first)  # the engine stops while the portal holds the request

    await kit.host(config_for(kit, scripted))
    held, resent = await scripted.wait_for(2)
    assert held["attempt"] == 1
    assert resent["attempt"] == 2
    assert resent["batch_id"] == held["batch_id"] == stored.batch_id
    assert resent["events"] == held["events"]  # the same ids, seqs and stamps
    assert [e["seq"] for e in resent["events"]] == [1, 2]
    await eventually(lambda: kit.reader().open_batches("p1") == [], what="the ack")


async def test_retries_keep_counting_before_and_after_a_crash(
    kit: HostKit, scripted: ScriptedPortal
) -> None:
    scripted.script = ["fail", "fail", "hold"]
    first = await kit.host(config_for(kit, scripted))
    await first.append([kit.record("42", 1)])
    await kit.pump(scripted.held.is_set, step_s=1)
    await kit.close_host(first)

    second = await kit.host(config_for(kit, scripted))
    seen = await scripted.wait_for(4)
    assert [batch["attempt"] for batch in seen] == [1, 2, 3, 4]
    assert len({batch["batch_id"] for batch in seen}) == 1
    assert [batch["events"] for batch in seen[1:]] == [seen[0]["events"]] * 3
    delivered = second.counters.value
    await eventually(lambda: delivered("openlines_batches_delivered_total", portal="p1") == 1)
    assert kit.reader().open_batches("p1") == []


async def test_best_effort_events_of_a_batch_cut_short_are_dropped_not_resent(
    kit: HostKit, scripted: ScriptedPortal
) -> None:
    scripted.script = ["hold"]
    first = await kit.host(config_for(kit, scripted))
    await first.append(
        [kit.record("42", 1), kit.record("42", 2, delivery="best_effort", text="typing")]
    )
    await asyncio.wait_for(scripted.held.wait(), 10)
    await kit.close_host(first)

    second = await kit.host(config_for(kit, scripted))
    held, resent = await scripted.wait_for(2)
    assert [(e["type"], e["seq"], e["best_effort"]) for e in held["events"]] == [
        ("dialog.queued", 1, False),
        ("message.received", 2, False),
        ("message.received", None, True),
    ]
    # the typing signal had its one attempt (its outcome lost with the engine): at most once
    assert resent["attempt"] == 2
    assert resent["events"] == held["events"][:2]
    assert second.counters.value("openlines_dropped_total", portal="p1") == 1
    await eventually(lambda: kit.reader().open_batches("p1") == [], what="the ack")
    assert (await second.gauges())["p1"] == (0, 0, 0)  # dropped, not dead-lettered
