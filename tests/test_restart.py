"""The engine as a real subprocess: kill -9 while receiving, restart, nothing acknowledged lost.

Also checks that restarts do not trip over, or pile up, the Ray processes a killed engine
leaves behind, that SIGTERM stops the engine cleanly with nothing left running, and that a
reply Telegram had when the engine was killed is reported uncertain, not sent twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from bench.engine_proc import EngineProcess, holds_open, role_of
from engine.runtime import processes_using, ray_temp_dir
from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import engine_config_data
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update

pytestmark = pytest.mark.slow


class Sender:
    """Pushes messages for five chats until stopped; remembers what the engine acknowledged.

    While the engine is down the sender waits on ``engine_up`` (the test clears it before a
    kill and sets it once the new engine is ready) rather than retrying on a timer.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[dict[str, Any]] = []
        self.next_sequence = 0
        self.engine_up = asyncio.Event()
        self.engine_up.set()
        self._acked_more = asyncio.Condition()
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
                            await self._acknowledged(batch)
                except (TimeoutError, aiohttp.ClientError):
                    await self.engine_up.wait()

    async def _acknowledged(self, batch: list[dict[str, Any]]) -> None:
        async with self._acked_more:
            self.acked.extend(batch)
            self.next_sequence += 1
            self._acked_more.notify_all()

    async def wait_for_acks(self, count: int, timeout_s: float = 60.0) -> None:
        """Until ``count`` messages were acknowledged; fails if the engine stops taking them."""
        async with self._acked_more:
            await asyncio.wait_for(
                self._acked_more.wait_for(lambda: len(self.acked) >= count), timeout_s
            )

    def stop(self) -> None:
        self._stop.set()
        self.engine_up.set()


@pytest.fixture
def config(tmp_path: Path, portal: PortalStandIn) -> dict[str, Any]:
    return engine_config_data(tmp_path, [portal.portal_config(linger_ms=5)], [custom_connector()])


def check_delivery(portal: PortalStandIn, acked: list[dict[str, Any]]) -> None:
    """Every acknowledged message arrived; each chat is one dialog, opened once with
    ``dialog.queued`` and in the chat's order; ``seq`` grows over every event."""
    first_seen: dict[str, dict[str, Any]] = {}
    for event in portal.events:
        first_seen.setdefault(event["id"], event)
    events = list(first_seen.values())
    messages = {
        e["data"]["channel_event_id"]: e for e in events if e["type"].startswith("message.")
    }
    missing = [m["event_id"] for m in acked if m["event_id"] not in messages]
    assert missing == [], f"{len(missing)} acknowledged messages never delivered"
    assert len(messages) == len([e for e in events if e["type"].startswith("message.")])
    for chat in {m["chat_id"] for m in acked}:
        of_chat = [e for e in messages.values() if e["data"]["dialog_key"] == chat]
        sequences = [e["data"]["order_key"] for e in of_chat]
        assert sequences == sorted(sequences), f"{chat} out of order"
        [dialog_id] = {e["dialog"]["id"] for e in of_chat}
        stream = [e for e in events if e["dialog"]["id"] == dialog_id]
        assert stream[0]["type"] == "dialog.queued", f"{chat}: its dialog did not open first"
    opened = [e["dialog"]["id"] for e in events if e["type"] == "dialog.queued"]
    assert len(opened) == len(set(opened)) == len({m["chat_id"] for m in acked})
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)


async def test_kill_9_while_receiving_then_restart_delivers_every_acknowledged_message(
    tmp_path: Path, config: dict[str, Any], portal: PortalStandIn
) -> None:
    ray_dir = ray_temp_dir(Path(config["data_dir"]))
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    config["port"] = int(engine.base_url.rsplit(":", 1)[1])  # restarts take the same port
    sender = Sender(f"{engine.base_url}/hooks/custom/shop")
    portal.engine_public_key_b64 = engine.engine_key
    sending = asyncio.create_task(sender.run())
    leftovers_after_restart: list[int] = []
    try:
        for _ in range(2):
            await sender.wait_for_acks(len(sender.acked) + 100)
            sender.engine_up.clear()
            await engine.kill()
            engine = EngineProcess(config, tmp_path)
            await engine.start()
            sender.engine_up.set()
            leftovers_after_restart.append(len(processes_using(ray_dir)))
            await sender.wait_for_acks(len(sender.acked) + 50)
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
        assert await engine.stop() == 0
        assert processes_using(ray_dir) == []
    finally:
        sender.stop()
        if engine.process is not None and engine.process.returncode is None:
            await engine.kill()


async def test_sigterm_stops_cleanly_and_the_next_start_delivers_what_was_pending(
    tmp_path: Path, config: dict[str, Any], portal: PortalStandIn
) -> None:
    ray_dir = ray_temp_dir(Path(config["data_dir"]))
    await portal.stop()
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    async with aiohttp.ClientSession() as session:
        body, headers = signed_custom_request([custom_message("c", i, f"m{i}") for i in range(10)])
        url = f"{engine.base_url}/hooks/custom/shop"
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
    assert await engine.stop() == 0
    assert "openlines: stopped" in "".join(engine.output)
    assert processes_using(ray_dir) == []

    await portal.start(port=int(portal.url.rsplit(":", 1)[1].split("/")[0]))
    portal.engine_public_key_b64 = engine.engine_key
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    try:
        events = await portal.wait_for_events(10, "message.", timeout_s=60)
        assert [e["data"]["content"]["text"] for e in events] == [f"m{i}" for i in range(10)]
        assert [e["type"] for e in portal.events] == ["dialog.queued"] + ["message.received"] * 10
        assert [e["seq"] for e in portal.events] == list(range(1, 12))
    finally:
        assert await engine.stop() == 0


TELEGRAM_SECRET = "telegram-secret-token"


async def portal_call(
    engine: EngineProcess, portal: PortalStandIn, path: str, data: dict[str, Any]
) -> tuple[int, Any]:
    """A signed POST to the engine's portal API, as the portal makes it."""
    body = orjson.dumps(data)
    headers = {**portal.side.sign_request("POST", path, body), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.base_url + path, data=body, headers=headers) as response:
            return response.status, await response.json()


async def test_kill_9_while_telegram_holds_a_reply_then_restart_reports_it_uncertain(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    connector = {
        "id": "tg",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "bot_token": telegram.token,
            "secret_token": TELEGRAM_SECRET,
            "api_base_url": telegram.base_url,
        },
    }
    members = [{"operator": "anna"}]  # offline: nothing else is sent to the customer
    rules = {"acme-support": {"portal": "acme", "line": "support", "queue": {"members": members}}}
    config = engine_config_data(tmp_path, [portal.portal_config(linger_ms=5)], [connector], rules)
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    try:
        portal.engine_public_key_b64 = engine.engine_key
        update = {
            "update_id": 500,
            "message": {
                "message_id": 1,
                "from": {"id": 4242, "is_bot": False, "first_name": "Mayel"},
                "chat": {"id": 4242, "first_name": "Mayel", "type": "private"},
                "date": 1776047737,
                "text": "where is my order?",
            },
        }
        async with aiohttp.ClientSession() as session:
            hook = f"{engine.base_url}/hooks/telegram/tg"
            assert (await post_update(session, hook, TELEGRAM_SECRET, update)).status == 200
        (message,) = await portal.wait_for_events(1, "message.", timeout_s=60)
        arrived = telegram.hold_next("sendMessage")
        status, body = await portal_call(
            engine,
            portal,
            f"/api/v1/dialogs/{message['dialog']['id']}/messages",
            {"content": {"kind": "text", "text": "It ships today"}, "client_id": "op-1"},
        )
        assert status == 202, body
        await asyncio.wait_for(arrived.wait(), 60)  # Telegram has it; its answer never comes
        await engine.kill()

        engine = EngineProcess(config, tmp_path)
        await engine.start()
        (outcome,) = await portal.wait_for_events(1, "reply.", timeout_s=60)
        assert outcome["type"] == "reply.uncertain"
        assert outcome["dialog"]["id"] == message["dialog"]["id"]
        data = outcome["data"]
        assert (data["reply_id"], data["client_id"], data["origin"]) == (
            body["reply_id"],
            "op-1",
            "operator",
        )
        assert (data["reason"], data["attempts"]) == ("interrupted", 1)
        (sent,) = telegram.calls_to("sendMessage")  # exactly one: never sent blindly again
        assert sent.params["text"] == "It ships today"
        assert await engine.stop() == 0
        assert [c.method for c in telegram.calls] == ["sendMessage"]
    finally:
        if engine.process is not None and engine.process.returncode is None:
            await engine.kill()


@pytest.mark.parametrize(
    ("victim", "registry_host"),
    [("PortalActor", False), ("ChannelActor", False), ("ChannelActor", True)],
    ids=["portal-actor", "channel-actor-1", "channel-actor-0-and-the-registry"],
)
async def test_sigterm_just_after_an_actor_was_killed_exits_0_and_leaves_nothing(
    tmp_path: Path,
    config: dict[str, Any],
    portal: PortalStandIn,
    victim: str,
    registry_host: bool,
) -> None:
    ray_dir = ray_temp_dir(Path(config["data_dir"]))
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    portal.engine_public_key_b64 = engine.engine_key
    try:
        async with aiohttp.ClientSession() as session:
            body, headers = signed_custom_request([custom_message("c", 1, "before")])
            url = f"{engine.base_url}/hooks/custom/shop"
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200
        [process] = [
            p
            for p in engine.tree()
            if role_of(p) == victim
            # channel actor 0 hosts the registry (actors.names)
            and holds_open(p, "registry.sqlite3") == registry_host
        ][:1]
        process.kill()  # kill -9; Ray starts it again while the engine is told to stop
        code = await engine.stop()
    finally:
        if engine.process is not None and engine.process.returncode is None:
            await engine.kill()
    output = "".join(engine.output)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "openlines: stopped" in output
    assert processes_using(ray_dir) == []
    assert not ray_dir.exists(), "the Ray temp folder is left behind"
