"""Telegram end to end: real-format updates in, sealed batches out, operator replies back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update

pytestmark = pytest.mark.usefixtures("ray_session")

SECRET = "telegram-secret-token"
RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}]},
    }
}


def update(
    update_id: int, chat_id: int, text: str, message_id: int | None = None
) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id or update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Mayel", "username": "mayel"},
            "chat": {"id": chat_id, "first_name": "Mayel", "type": "private"},
            "date": 1776047737,
            "text": text,
        },
    }


@pytest.fixture
async def engine(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> AsyncIterator[RunningEngine]:
    connector = {
        "id": "tg",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "bot_token": telegram.token,
            "secret_token": SECRET,
            "api_base_url": telegram.base_url,
        },
    }
    config = engine_config(tmp_path, [portal.portal_config(linger_ms=300)], [connector], RULES)
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def post(engine: RunningEngine, body: dict[str, Any], secret: str | None = SECRET) -> int:
    result = await post_update(engine.session, engine.hook_url("telegram", "tg"), secret, body)
    return result.status


async def test_parallel_webhooks_of_one_chat_arrive_in_update_id_order(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    updates = [update(1000 + i, 42, f"part {i}") for i in range(12)]
    random.Random(7).shuffle(updates)

    statuses = await asyncio.gather(*(post(engine, u) for u in updates))

    assert statuses == [200] * 12
    events = await portal.wait_for_events(12, "message.", "reply.")
    assert [e["data"]["channel_event_id"] for e in events] == [str(1000 + i) for i in range(12)]
    assert [e["data"]["content"]["text"] for e in events] == [f"part {i}" for i in range(12)]


async def test_edit_arrives_as_edit_and_ignored_updates_get_200(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    assert await post(engine, update(1, 42, "order #1042?")) == 200
    edited = update(2, 42, "order #1043?", message_id=1)
    edited["edited_message"] = edited.pop("message")
    edited["edited_message"]["edit_date"] = 1776047802
    assert await post(engine, edited) == 200
    channel_post = {
        "update_id": 3,
        "channel_post": {
            "message_id": 5,
            "date": 1,
            "chat": {"id": -100, "type": "channel"},
            "text": "news",
        },
    }
    assert await post(engine, channel_post) == 200

    events = await portal.wait_for_events(2, "message.", "reply.")

    assert [e["type"] for e in events] == ["message.received", "message.edited"]
    assert events[1]["data"]["channel_message_id"] == "1"
    metrics = await engine.metrics()
    assert metrics['openlines_ignored_total{channel="telegram",reason="channel_post"}'] == 1


async def test_operator_reply_reaches_telegram_and_outcome_reaches_portal(
    engine: RunningEngine, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    assert await post(engine, update(10, 4242, "hello")) == 200
    [event] = await portal.wait_for_events(1, "message.", "reply.")
    dialog_id = event["dialog"]["id"]

    status, body = await engine.portal_call(
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": "Hi, checking"}, "client_id": "op-1"},
    )

    assert status == 202, body
    outcome = (await portal.wait_for_events(2, "message.", "reply."))[1]
    assert outcome["type"] == "reply.sent"
    assert outcome["data"]["reply_id"] == body["reply_id"]
    assert outcome["data"]["client_id"] == "op-1"
    [call] = telegram.calls_to("sendMessage")
    assert call.params["chat_id"] in ("4242", 4242)
    assert call.params["text"] == "Hi, checking"
    assert outcome["data"]["channel_message_ids"] == [
        str(call_id) for call_id in outcome["data"]["channel_message_ids"]
    ]


async def test_blocked_bot_reply_fails_with_the_reason(
    engine: RunningEngine, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    assert await post(engine, update(11, 77, "hello")) == 200
    [event] = await portal.wait_for_events(1, "message.", "reply.")
    telegram.block_next()

    status, _ = await engine.portal_call(
        portal,
        "POST",
        f"/api/v1/dialogs/{event['dialog']['id']}/messages",
        {"content": {"kind": "text", "text": "are you there?"}},
    )

    assert status == 202
    outcome = (await portal.wait_for_events(2, "message.", "reply."))[1]
    assert outcome["type"] == "reply.failed"
    assert "blocked" in outcome["data"]["error"]


async def test_reply_refusals(engine: RunningEngine, portal: PortalStandIn) -> None:
    status, body = await engine.portal_call(
        portal,
        "POST",
        "/api/v1/dialogs/dlg_unknown/messages",
        {"content": {"kind": "text", "text": "hi"}},
    )
    assert status == 404 and "customer writes first" in body["message"]

    assert await post(engine, update(12, 99, "hello")) == 200
    [event] = await portal.wait_for_events(1, "message.", "reply.")
    path = f"/api/v1/dialogs/{event['dialog']['id']}/messages"
    payload = b'{"content": {"kind": "text", "text": "hi"}}'
    headers = portal.side.sign_request("POST", path, payload)
    headers["Content-Type"] = "application/json"
    assert (await engine.request("POST", path, payload, headers))[0] == 202
    status, body = await engine.request("POST", path, payload, headers)
    assert status == 401 and "replay" in body["message"]

    headers = portal.side.sign_request("POST", path, payload)
    headers["Content-Type"] = "application/json"
    status, body = await engine.request("POST", path, payload + b" ", headers)
    assert status == 401 and body["error"] == "bad_signature"

    other = PortalStandIn.create("acme")
    other.license_key = "a-different-license-key-000"
    other.engine_public_key_b64 = engine.engine_public_key_b64
    status, body = await engine.portal_call(
        other, "POST", path, {"content": {"kind": "text", "text": "x"}}
    )
    assert status == 401

    status, body = await engine.portal_call(portal, "POST", path, {"content": {"kind": "poll"}})
    assert status == 422 and "content" in body["message"]


async def test_wrong_secret_is_refused_and_nothing_stored(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    assert await post(engine, update(20, 5, "forged"), secret="wrong") == 401
    assert await post(engine, update(21, 5, "unsigned"), secret=None) == 401
    assert await post(engine, update(22, 5, "genuine")) == 200

    events = await portal.wait_for_events(1, "message.", "reply.")
    assert [e["data"]["content"]["text"] for e in events] == ["genuine"]
    metrics = await engine.metrics()
    assert metrics['openlines_rejected_total{reason="bad_signature"}'] == 2


async def test_engine_key_is_served(engine: RunningEngine) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(engine.base_url + "/api/v1/engine-key") as response:
            assert response.status == 200
            body = await response.json()
    assert body == {"algorithm": "Ed25519", "public_key": engine.engine_public_key_b64}


async def test_the_api_signature_covers_the_request_target_exactly_as_sent(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    """docs/protocol.md: byte for byte, with the same percent-encoding."""
    sent = "/api/v1/dialogs/dlg%5Funknown"  # an escape aiohttp's router decodes

    async def get(signed_path: str) -> tuple[int, Any]:
        headers = portal.side.sign_request("GET", signed_path, b"")
        url = URL(engine.base_url + sent, encoded=True)  # sent as written, not normalized
        async with engine.session.get(url, headers=headers) as response:
            return response.status, await response.json()

    status, body = await get(sent)
    assert status == 404 and "dlg_unknown" in body["message"]  # authenticated, then not found
    status, body = await get("/api/v1/dialogs/dlg_unknown")  # signed over another target
    assert status == 401 and body["error"] == "bad_signature"
