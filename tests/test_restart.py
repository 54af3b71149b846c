"""The engine as a real subprocess: kill -9 while receiving, restart, nothing acknowledged lost.

Also checks that restarts do not trip over, or pile up, the Ray processes a killed engine
leaves behind, and that SIGTERM stops the engine cleanly with nothing left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from engine.runtime import processes_using, ray_temp_dir
from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.engine_process import EngineProcess, engine_key
from tests.harness import ADMIN_TOKEN, free_port
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.slow


class Sender:
    """Pushes messages for five chats until stopped; remembers what the engine acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[dict[str, Any]] = []
        self.next_sequence = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                sequence = self.next_sequence
                batch = [custom_message(f"chat-{c}", sequence, f"{c}/{sequence}") for c in range(5)]
                body, headers = signed_custom_request(batch)
                try:
                    async with session.post(self.url, data=body, headers=headers) as response:
                        if response.status == 200:
                            self.acked.extend(batch)
                            self.next_sequence += 1
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
async def setup(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[tuple[Path, int]]:
    port = free_port()
    rules = tmp_path / "rules"
    rules.mkdir()
    config = {
        "port": port,
        "data_dir": str(tmp_path / "data"),
        "rules_dir": str(rules),
        "admin_token": ADMIN_TOKEN,
        "channel_actors": 2,
        "portals": [portal.portal_config(linger_ms=5)],
        "connectors": [custom_connector()],
    }
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(config))
    yield path, port


async def wait_for_acks(sender: Sender, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while len(sender.acked) < count:
        assert asyncio.get_running_loop().time() < deadline, "engine stopped acknowledging"
        await asyncio.sleep(0.02)


def check_delivery(portal: PortalStandIn, acked: list[dict[str, Any]]) -> None:
    first_seen: dict[str, dict[str, Any]] = {}
    for event in portal.messages():
        first_seen.setdefault(event["data"]["channel_event_id"], event)
    missing = [m["event_id"] for m in acked if m["event_id"] not in first_seen]
    assert missing == [], f"{len(missing)} acknowledged messages never delivered"
    for chat in {m["chat_id"] for m in acked}:
        sequences = [
            e["data"]["order_key"] for e in first_seen.values() if e["data"]["dialog_key"] == chat
        ]
        assert sequences == sorted(sequences), f"{chat} out of order"
    seqs = [e["seq"] for e in first_seen.values()]
    assert seqs == sorted(seqs)


async def test_kill_9_while_receiving_then_restart_delivers_every_acknowledged_message(
    setup: tuple[Path, int], portal: PortalStandIn
) -> None:
    config_path, port = setup
    data_dir = config_path.parent / "data"
    sender = Sender(f"http://127.0.0.1:{port}/hooks/custom/shop")
    engine = EngineProcess(config_path)
    await engine.start()
    portal.engine_public_key_b64 = await engine_key(port)
    sending = asyncio.create_task(sender.run())
    leftovers_after_restart: list[int] = []
    try:
        for _ in range(2):
            await wait_for_acks(sender, len(sender.acked) + 100)
            await engine.kill()
            await asyncio.sleep(0)
            engine = EngineProcess(config_path)
            await engine.start()
            leftovers_after_restart.append(len(processes_using(ray_temp_dir(data_dir))))
            await wait_for_acks(sender, len(sender.acked) + 50)
        sender.stop()
        await sending
        acked_ids = {m["event_id"] for m in sender.acked}
        await portal.wait_for(
            lambda p: acked_ids <= {e["data"]["channel_event_id"] for e in p.messages()},
            timeout_s=60,
        )
        check_delivery(portal, sender.acked)
        assert leftovers_after_restart[1] <= leftovers_after_restart[0], (
            "Ray processes pile up over restarts"
        )
        assert await engine.terminate() == 0
        assert processes_using(ray_temp_dir(data_dir)) == []
    finally:
        sender.stop()
        if engine.process is not None and engine.process.returncode is None:
            await engine.kill()


async def test_sigterm_stops_cleanly_and_the_next_start_delivers_what_was_pending(
    setup: tuple[Path, int], portal: PortalStandIn
) -> None:
    config_path, port = setup
    data_dir = config_path.parent / "data"
    portal.failures = []
    await portal.stop()
    engine = EngineProcess(config_path)
    await engine.start()
    key = await engine_key(port)
    url = f"http://127.0.0.1:{port}/hooks/custom/shop"
    async with aiohttp.ClientSession() as session:
        body, headers = signed_custom_request([custom_message("c", i, f"m{i}") for i in range(10)])
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
    assert await engine.terminate() == 0
    assert "openlines: stopped" in "".join(engine.output)
    assert processes_using(ray_temp_dir(data_dir)) == []

    await portal.start(port=int(portal.url.rsplit(":", 1)[1].split("/")[0]))
    portal.engine_public_key_b64 = key
    engine = EngineProcess(config_path)
    await engine.start()
    try:
        events = await portal.wait_for_events(10, timeout_s=60)
        assert [e["data"]["content"]["text"] for e in events] == [f"m{i}" for i in range(10)]
    finally:
        assert await engine.terminate() == 0
