"""Meta's channels through the running engine (Ray actors): the app-level webhooks' GET
handshake and signed batches into the channel actors, messages to the portal, the
operator's replies out through the Graph stand-in, and a WhatsApp failed status back to the
portal as a channel event with Meta's reason."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
    handshake,
    messaging_entry,
    notification,
    post_notification,
    recorded_json,
)
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.usefixtures("ray_session")

PSID = "7689966077685933"
RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}]},
    }
}


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraphStandIn]:
    async with MetaGraphStandIn() as api:
        yield api


@pytest.fixture
async def engine(
    tmp_path: Path, portal: PortalStandIn, graph: MetaGraphStandIn
) -> AsyncIterator[RunningEngine]:
    app = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "graph_api_url": graph.graph_api_url,
    }

    def connector(cid: str, channel: str, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": cid,
            "channel": channel,
            "portal": "acme",
            "line": "support",
            "credentials": {**app, **credentials},
        }

    connectors = [
        connector("fb", "facebook", {"page_id": PAGE_ID, "page_access_token": PAGE_TOKEN}),
        connector("wa", "whatsapp", {"phone_number_id": PHONE_NUMBER_ID, "access_token": WA_TOKEN}),
    ]
    config = engine_config(tmp_path, [portal.portal_config(linger_ms=50)], connectors, RULES)
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def reply(engine: RunningEngine, portal: PortalStandIn, dialog_id: str, text: str) -> None:
    path = f"/api/v1/dialogs/{dialog_id}/messages"
    status, body = await engine.portal_call(
        portal, "POST", path, {"content": {"kind": "text", "text": text}}
    )
    assert status == 202, body


async def test_facebook_and_whatsapp_both_ways_through_the_actors(
    engine: RunningEngine, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    fb_hook = f"{engine.base_url}/hooks/facebook"
    wa_hook = f"{engine.base_url}/hooks/whatsapp"
    assert await handshake(engine.session, fb_hook, VERIFY_TOKEN) == (200, "1158201444")

    event = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": "m_ray_1", "text": "Привет из Messenger 👋"},
    }
    fb_batch = notification("page", messaging_entry(PAGE_ID, event))
    assert await post_notification(engine.session, fb_hook, fb_batch) == (200, "EVENT_RECEIVED")
    wa_text = recorded_json("wa_text.json")
    wa_text["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    assert (await post_notification(engine.session, wa_hook, wa_text)).status == 200

    messages = await portal.wait_for_events(2, "message.")
    dialogs = {m["data"]["route"]["connector_id"]: m["dialog"]["id"] for m in messages}
    await reply(engine, portal, dialogs["fb"], "Здравствуйте!")
    await reply(engine, portal, dialogs["wa"], "Yes, navy is in stock")
    sent = await portal.wait_for_events(2, "reply.")
    assert {e["type"] for e in sent} == {"reply.sent"}
    by_dialog = {e["dialog"]["id"]: e["data"]["channel_message_ids"] for e in sent}
    [messenger] = [c.body for c in graph.calls if c.node == PAGE_ID]
    [cloud_api] = [c.body for c in graph.calls if c.node == PHONE_NUMBER_ID]
    assert messenger["recipient"] == {"id": PSID}
    assert messenger["message"]["text"].endswith("Здравствуйте!")
    assert cloud_api["to"] == "16505551234"
    [wamid] = by_dialog[dialogs["wa"]]

    failed = recorded_json("wa_status_failed.json")
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    assert (await post_notification(engine.session, wa_hook, failed)).status == 200
    [channel_event] = await portal.wait_for_events(1, "channel.")
    assert channel_event["dialog"]["id"] == dialogs["wa"]
    assert channel_event["data"]["kind"] == "failed"
    assert "[code 131047]" in channel_event["data"]["reason"]
