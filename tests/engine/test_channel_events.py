"""Channel events end to end in one process: a Viber customer writes, the operator's reply
goes out through the Viber stand-in, and Viber's receipts and failure of that reply reach
the portal as ``channel.event`` in the dialog, the failure with Viber's own words; a VK
event the engine cannot read is answered ``ok`` and counted, never retried forever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.clock import ManualClock
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, portal_call, serving
from tests.standins.portal import PortalStandIn
from tests.standins.viber_api import ViberApiStandIn, post_event, recorded_event
from tests.standins.vk_api import VkApiStandIn

VK_SECRET = "Qw3rTy8sEcr3t"
VK_GROUP = 193668024


@pytest.fixture
async def served_channels(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    viber_api: ViberApiStandIn,
    vk_api: VkApiStandIn,
) -> AsyncIterator[Served]:
    connectors = [
        connector("vb", "viber", auth_token=viber_api.auth_token, api_base_url=viber_api.base_url),
        connector(
            "vk",
            "vk",
            access_token="vk-token",
            secret=VK_SECRET,
            confirmation_code="693d0ba9",
            group_id=VK_GROUP,
            api_base_url=vk_api.base_url,
        ),
    ]
    async with serving(tmp_path, clock, session, portal, connectors) as running:
        yield running


async def viber_callback(served: Served, api: ViberApiStandIn, event: dict[str, Any]) -> int:
    posted = await post_event(served.session, f"{served.url}/hooks/viber/vb", api.auth_token, event)
    return posted.status


async def test_a_viber_failure_of_our_reply_reaches_the_operator_with_vibers_reason(
    served_channels: Served, portal: PortalStandIn, viber_api: ViberApiStandIn
) -> None:
    customer = recorded_event("unicode")
    assert await viber_callback(served_channels, viber_api, customer) == 200
    [message] = await portal.wait_for_events(1, "message.")
    dialog_id = message["dialog"]["id"]
    status, _ = await portal_call(
        served_channels,
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": "Проверим заказ 📦"}},
    )
    assert status == 202
    [sent] = await portal.wait_for_events(1, "reply.")
    [token] = sent["data"]["channel_message_ids"]
    user = customer["sender"]["id"]

    for name, extra in (("delivered", {}), ("failed", {"desc": "Bot is blocked by user"})):
        callback = {**recorded_event(name), "user_id": user, "message_token": int(token), **extra}
        assert await viber_callback(served_channels, viber_api, callback) == 200
    # Viber retries a callback it thinks unanswered: the same one is stored once.
    assert await viber_callback(served_channels, viber_api, callback) == 200

    events = await portal.wait_for_events(2, "channel.")
    assert [e["data"]["kind"] for e in events] == ["delivered", "failed"]
    assert {e["dialog"]["id"] for e in events} == {dialog_id}
    failed = events[1]["data"]
    assert failed["channel_message_ids"] == [token] and failed["reason"] == "Bot is blocked by user"
    # 64-bit tokens reach the portal as strings, never as numbers a JavaScript portal rounds.
    assert isinstance(failed["raw"]["message_token"], str)
    assert isinstance(message["data"]["raw"]["message_token"], str)
    assert len(portal.of_types("message.")) == 1  # no event became a customer message

    # The receipts moved our message's status: delivered, then failed with Viber's words.
    status, history = await portal_call(
        served_channels, portal, "GET", f"/api/v1/dialogs/{dialog_id}/history"
    )
    assert status == 200
    [shown] = [e for e in history["events"] if e["type"] == "reply.sent"]
    [part] = shown["delivery"]
    assert (part["channel_message_id"], part["status"], part["reason"]) == (
        token,
        "failed",
        "Bot is blocked by user",
    )
    assert [e["delivery"] for e in history["events"] if e["type"] != "reply.sent"] == [None] * (
        len(history["events"]) - 1
    )


async def test_a_vk_event_the_engine_cannot_read_is_answered_ok_and_counted(
    served_channels: Served,
) -> None:
    old_format = {
        "type": "message_new",
        "group_id": VK_GROUP,
        "event_id": "old-1",
        "secret": VK_SECRET,
        "object": {"id": 43, "date": 1492522323, "out": 0, "user_id": 5, "body": "старое"},
    }
    headers = {"Content-Type": "application/json"}
    status, body = await served_channels.request(
        "POST", "/hooks/vk/vk", orjson.dumps(old_format), headers
    )
    assert (status, body) == (200, "ok")
    counters = served_channels.engine.counters.snapshot()
    labels = (("channel", "vk"), ("reason", "old_api_version:message_new"))
    assert counters[("openlines_ignored_total", labels)] == 1
