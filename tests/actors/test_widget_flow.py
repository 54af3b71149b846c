"""The widget through the running engine (Ray actors): a visitor's live connection is held
by whichever channel actor accepted it, while the operator's reply is sent by the portal
actor. Killing every process in turn (kill -9: each channel actor, then the portal actor)
loses nothing and doubles nothing: the visitor's messages reach the portal once each, in
order, and every entry of the conversation reaches the visitor once, in order, across the
connections the drops forced (docs/channels/widget.md, "The live path back")."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

DEADLINE_S = 60.0
WIDGET_ID = "acme-widget-0001"
ORIGIN = "http://acme.test"
RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}], "require_accept": False},
    }
}


async def start_widget_engine(
    tmp_path: Path, portal: PortalStandIn, **overrides: Any
) -> RunningEngine:
    connector = {
        "id": "site",
        "channel": "widget",
        "portal": "acme",
        "line": "support",
        "credentials": {"widget_id": WIDGET_ID, "allowed_origins": [ORIGIN]},
    }
    config = engine_config(
        tmp_path, [portal.portal_config(linger_ms=5)], [connector], RULES, **overrides
    )
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    return running


@pytest.fixture
async def engine(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[RunningEngine]:
    running = await start_widget_engine(tmp_path, portal)
    yield running
    await stop_engine(running)


@pytest.fixture
async def still_engine(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[RunningEngine]:
    """The engine on a manual clock that no one moves: no bucket fills while a test runs."""
    running = await start_widget_engine(tmp_path, portal, clock="manual")
    yield running
    await stop_engine(running)


@dataclass
class Visitor:
    """The widget's script, reduced to its contract: a token, messages sent until answered
    (the same client id on every try), and a live connection that reconnects from its
    cursor whenever it drops, showing each entry above the cursor once."""

    engine: RunningEngine
    token: str = ""
    cursor: int = 0
    shown: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    _task: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"{self.engine.base_url}/widget/{WIDGET_ID}"

    def headers(self) -> dict[str, str]:
        return {
            "Origin": ORIGIN,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
        }

    async def start(self) -> None:
        async with self.engine.session.post(
            f"{self.base}/session", data=b"{}", headers=self.headers()
        ) as answer:
            assert answer.status == 201
            self.token = (await answer.json())["token"]
        self._task = asyncio.create_task(self._live())

    async def send(self, text: str, client_id: str) -> int:
        """Until the engine stored it: a refused or dropped try is tried again."""
        body = orjson.dumps({"client_id": client_id, "text": text})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while loop.time() < deadline:
            try:
                async with self.engine.session.post(
                    f"{self.base}/messages", data=body, headers=self.headers()
                ) as answer:
                    if answer.status == 200:
                        return int((await answer.json())["seq"])
                    assert answer.status == 503, await answer.text()
            except aiohttp.ClientError:
                pass  # the actor that had the connection died: try again, as the widget does
            await asyncio.sleep(0.05)  # the widget's back-off, not a wait for an actor
        raise AssertionError(f"{text!r} not stored within {DEADLINE_S} s")

    async def _live(self) -> None:
        while True:
            try:
                async with self.engine.session.ws_connect(
                    f"{self.base}/live".replace("http", "ws"), headers={"Origin": ORIGIN}
                ) as ws:
                    self.connections += 1
                    hello = {"token": self.token, "after": self.cursor}
                    await ws.send_str(orjson.dumps(hello).decode())
                    async for message in ws:
                        frame = orjson.loads(message.data)
                        if "seq" not in frame:
                            continue
                        assert frame["seq"] > self.cursor, "an entry sent twice"
                        self.cursor = frame["seq"]
                        self.shown.append(frame)
            except (aiohttp.ClientError, ConnectionError):
                pass  # the holding actor died: reconnect from the cursor
            await asyncio.sleep(0.05)  # the widget's back-off, not a wait for an actor

    def texts(self) -> list[str]:
        return [entry["content"]["text"].split(": ", 1)[-1] for entry in self.shown]

    async def shows(self, count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while len(self.shown) < count:
            assert loop.time() < deadline, f"shown {self.texts()}, waited for {count}"
            await asyncio.sleep(0.01)  # a poll with a deadline

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def operator_says(
    engine: RunningEngine, portal: PortalStandIn, dialog: str, text: str
) -> None:
    """Through the portal API, retried while the portal actor restarts (503)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    body = {"content": {"kind": "text", "text": text}, "operator_id": "anna"}
    while True:
        status, answer = await engine.portal_call(
            portal, "POST", f"/api/v1/dialogs/{dialog}/messages", body
        )
        if status == 202:
            return
        assert status == 503 and loop.time() < deadline, (status, answer)
        await asyncio.sleep(0.05)  # the portal's retry, not a wait for an actor


@pytest.mark.usefixtures("ray_session")
async def test_every_process_killed_in_turn_loses_and_doubles_nothing_either_way(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    visitor = Visitor(engine)
    await visitor.start()
    try:
        await visitor.send("m1", "c-1")
        [first] = await portal.wait_for_events(1, "message.", timeout_s=DEADLINE_S)
        dialog = first["dialog"]["id"]
        await operator_says(engine, portal, dialog, "r1")
        await visitor.shows(2)

        written = 1
        for index, victim in enumerate(engine.actors.channels):
            os.kill(await victim.pid.remote(), signal.SIGKILL)
            written += 1
            await visitor.send(f"m{written}", f"c-{written}")
            await operator_says(engine, portal, dialog, f"r{index + 2}")
            # Shown before the next kill: a reply accepted (202) but not yet in the log
            # when its portal actor dies is sent after the restart, after later messages.
            await visitor.shows(2 * written)
        host = engine.actors.hosts["portal-acme"]
        os.kill(await host.pid.remote(), signal.SIGKILL)
        written += 1
        await visitor.send(f"m{written}", f"c-{written}")
        await operator_says(engine, portal, dialog, "r4")
        await visitor.send("m4", "c-4")  # a repeat (its answer was lost): stored once
        await visitor.shows(8)

        assert visitor.texts() == ["m1", "r1", "m2", "r2", "m3", "r3", "m4", "r4"]
        # A message acknowledged while an actor restarts reaches the portal once its portal
        # actor is back and every channel actor's watermark has passed it (docs/architecture.md,
        # "One message"), so the operator's later reply can be reported first: wait for both.
        await portal.wait_for(
            lambda p: (
                len(p.of_types("reply.sent")) >= 4 and len({e["id"] for e in p.messages()}) >= 4
            ),
            timeout_s=DEADLINE_S,
        )
        received = {e["id"]: e for e in portal.messages()}.values()
        assert [e["data"]["content"]["text"] for e in received] == ["m1", "m2", "m3", "m4"]
        sent = {e["data"]["reply_id"] for e in portal.of_types("reply.sent")}
        assert len(sent) == 4
        assert visitor.connections >= 2  # the killed actor's connection was taken over
    finally:
        await visitor.stop()


@pytest.mark.usefixtures("ray_session")
async def test_a_visitors_limit_holds_across_the_channel_actors(
    still_engine: RunningEngine,
) -> None:
    """Each request on a connection of its own, so ``SO_REUSEPORT`` spreads them over both
    channel actors: the visitor gets 30 messages a minute engine-wide (the default), within
    the stated bound of ``30 + 2 x 4`` (docs/channels/widget.md, "Rate limits"), where each
    actor's own bucket would have let all 40 through. The engine's clock stands still, so
    no token comes back while the test runs, however slowly the machine runs it."""
    visitor = Visitor(still_engine)
    await visitor.start()
    statuses: list[int] = []
    try:
        for n in range(40):
            body = orjson.dumps({"client_id": f"c-{n}", "text": f"m{n}"})
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as fresh,
                fresh.post(
                    f"{visitor.base}/messages", data=body, headers=visitor.headers()
                ) as answer,
            ):
                statuses.append(answer.status)
    finally:
        await visitor.stop()
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[:30] == [200] * 30, statuses
    assert admitted <= 38, statuses
