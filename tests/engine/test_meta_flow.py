"""Meta's channels end to end in one process: the app-level webhook (GET handshake, one signed
POST batching entries of several connectors) to the portal, the operator's reply back
through the Graph stand-in, and Meta's receipts and failures of that reply reaching the
portal as ``channel.event`` (a WhatsApp failed status with Meta's reason)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.clock import ManualClock
from tests.engine.meta_kit import APP, reply
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, serving
from tests.standins.meta_api import (
    FEED_PAGE_ID,
    IG_ACCOUNT_ID,
    IG_COMMENTS_ACCOUNT_ID,
    IG_TOKEN,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
    changes_entry,
    encode,
    handshake,
    messaging_entry,
    notification,
    post_notification,
    recorded_json,
    signed_headers,
)
from tests.standins.portal import PortalStandIn

PSID = "7689966077685933"
IGSID = "6917324161655021"
WA_CUSTOMER = "16505551234"
POLL_S = 60.0  # the least allowed: the portal stand-in checks signatures against real time
IG_MEDIA = "18050310947722369"


@pytest.fixture
async def served_meta(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    app = {**APP, "graph_api_url": graph.graph_api_url}
    connectors = [
        connector("fb", "facebook", **app, page_id=PAGE_ID, page_access_token=PAGE_TOKEN),
        connector(
            "fbc",
            "facebook",
            **app,
            page_id=FEED_PAGE_ID,
            page_access_token=PAGE_TOKEN,
            receive=["comments"],
        ),
        connector("ig", "instagram", **app, account_id=IG_ACCOUNT_ID, access_token=IG_TOKEN),
        connector("wa", "whatsapp", **app, phone_number_id=PHONE_NUMBER_ID, access_token=WA_TOKEN),
        connector(
            "igc",
            "instagram",
            **app,
            account_id=IG_COMMENTS_ACCOUNT_ID,
            access_token=IG_TOKEN,
            receive=["comments"],
            comment_poll_interval_s=POLL_S,
        ),
    ]
    async with serving(tmp_path, clock, session, portal, connectors) as running:
        yield running


def now_ms() -> int:
    return int(time.time() * 1000)


def customer_event(sender: str, account: str, mid: str, text: str) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": account},
        "timestamp": now_ms(),
        "message": {"mid": mid, "text": text},
    }


async def test_facebook_page_messages_and_comments_through_the_app_webhook(
    served_meta: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    hook = f"{served_meta.url}/hooks/facebook"
    assert await handshake(served_meta.session, hook, VERIFY_TOKEN) == (200, "1158201444")
    assert (await handshake(served_meta.session, hook, "guess")).status == 403

    comment = recorded_json("fb_feed_comment.json")["entry"][0]["changes"][0]["value"]
    batch = notification(
        "page",
        messaging_entry(
            PAGE_ID, customer_event(PSID, PAGE_ID, "m_e2e_1", "Доставка в субботу? 🚚")
        ),
        changes_entry(FEED_PAGE_ID, "feed", comment),
        messaging_entry("999000111222333", customer_event("42", "999000111222333", "m_x", "?")),
    )
    assert await post_notification(served_meta.session, hook, batch) == (200, "EVENT_RECEIVED")
    # Meta resends the same batch: stored once.
    assert (await post_notification(served_meta.session, hook, batch)).status == 200
    messages = await portal.wait_for_events(2, "message.")
    by_connector = {m["data"]["route"]["connector_id"]: m for m in messages}
    assert by_connector["fb"]["data"]["content"] == {
        "kind": "text",
        "text": "Доставка в субботу? 🚚",
    }
    assert by_connector["fbc"]["data"]["content"]["text"] == "How much is shipping to Berlin?"

    await reply(served_meta, portal, by_connector["fb"]["dialog"]["id"], "Да, до 18:00")
    await reply(served_meta, portal, by_connector["fbc"]["dialog"]["id"], "Бесплатно!")
    sent = await portal.wait_for_events(2, "reply.")
    assert {e["type"] for e in sent} == {"reply.sent"}
    messenger = [c for c in graph.calls if c.edge == "messages"]
    assert messenger[0].body["recipient"] == {"id": PSID}
    assert messenger[0].body["message"]["text"].endswith("Да, до 18:00")
    public = [c for c in graph.calls if c.edge == "comments"]
    assert public[0].node == comment["comment_id"]

    [mid] = next(e for e in sent if e["dialog"]["id"] == by_connector["fb"]["dialog"]["id"])[
        "data"
    ]["channel_message_ids"]
    delivery = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms(),
        "delivery": {"mids": [mid], "watermark": now_ms()},
    }
    receipt = notification("page", messaging_entry(PAGE_ID, delivery))
    assert (await post_notification(served_meta.session, hook, receipt)).status == 200
    [event] = await portal.wait_for_events(1, "channel.")
    assert (event["data"]["kind"], event["data"]["channel_message_ids"]) == ("delivered", [mid])
    assert event["dialog"]["id"] == by_connector["fb"]["dialog"]["id"]

    # A person answers from the page's inbox: the operator sees it, no customer message.
    inbox = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": now_ms(),
        "message": {"mid": "m_inbox_e2e", "is_echo": True, "text": "Anna here, from the shop"},
    }
    echo = notification("page", messaging_entry(PAGE_ID, inbox))
    assert (await post_notification(served_meta.session, hook, echo)).status == 200
    [_, elsewhere] = await portal.wait_for_events(2, "channel.")
    assert elsewhere["data"]["kind"] == "sent_elsewhere"
    assert elsewhere["data"]["extras"] == {"text": "Anna here, from the shop"}
    assert elsewhere["dialog"]["id"] == by_connector["fb"]["dialog"]["id"]
    assert len(portal.of_types("message.")) == 2


async def test_a_forged_or_unknown_app_webhook_stores_nothing(
    served_meta: Served, portal: PortalStandIn
) -> None:
    hook = f"{served_meta.url}/hooks/facebook"
    batch = encode(
        notification("page", messaging_entry(PAGE_ID, customer_event(PSID, PAGE_ID, "m_f", "x")))
    )
    headers = signed_headers(batch, app_secret="not-the-app-secret")
    status, _ = await served_meta.request("POST", "/hooks/facebook", batch, headers)
    assert status == 401
    unknown = notification("page", messaging_entry("999", customer_event("1", "999", "m_u", "x")))
    assert (await post_notification(served_meta.session, hook, unknown)).status == 404
    counters = served_meta.engine.counters.snapshot()
    assert any(
        name == "openlines_webhook_refused_total" and ("reason", "bad_signature") in labels
        for name, labels in counters
    )
    assert portal.of_types("message.") == []


async def test_whatsapp_reply_and_its_failed_status_reach_the_operator(
    served_meta: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    hook = f"{served_meta.url}/hooks/whatsapp"
    assert (await handshake(served_meta.session, hook, VERIFY_TOKEN)).status == 200
    inbound = recorded_json("wa_text.json")
    inbound["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    assert await post_notification(served_meta.session, hook, inbound) == (200, "EVENT_RECEIVED")
    [message] = await portal.wait_for_events(1, "message.")
    assert message["data"]["customer"]["name"] == "Sheena Nelson"
    await reply(served_meta, portal, message["dialog"]["id"], "Yes, navy is in stock")
    [sent] = await portal.wait_for_events(1, "reply.")
    [wamid] = sent["data"]["channel_message_ids"]
    assert graph.sent()[-1]["to"] == WA_CUSTOMER

    failed = recorded_json("wa_status_failed.json")
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    assert (await post_notification(served_meta.session, hook, failed)).status == 200
    [event] = await portal.wait_for_events(1, "channel.")
    assert event["data"]["kind"] == "failed"
    assert event["data"]["channel_message_ids"] == [wamid]
    assert "more than 24 hours" in event["data"]["reason"]
    assert "[code 131047]" in event["data"]["reason"]


async def test_instagram_direct_message_and_reply(
    served_meta: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    hook = f"{served_meta.url}/hooks/instagram"
    dm = notification(
        "instagram",
        messaging_entry(IG_ACCOUNT_ID, customer_event(IGSID, IG_ACCOUNT_ID, "aWdf_e2e", "Size M?")),
    )
    assert await post_notification(served_meta.session, hook, dm) == (200, "EVENT_RECEIVED")
    [message] = await portal.wait_for_events(1, "message.")
    await reply(served_meta, portal, message["dialog"]["id"], "Есть!")
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent"
    call = graph.calls[-1]
    assert (call.node, call.body["recipient"]) == (IG_ACCOUNT_ID, {"id": IGSID})


def ig_comment(cid: str, text: str, at_s: float) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(at_s))
    return {"id": cid, "text": text, "timestamp": stamp, "from": {"id": "848067418322071"}}


async def test_instagram_comments_are_polled_once_beside_the_webhook_and_answered(
    served_meta: Served, portal: PortalStandIn, graph: MetaGraphStandIn, clock: ManualClock
) -> None:
    graph.media[IG_COMMENTS_ACCOUNT_ID] = [{"id": IG_MEDIA, "media_product_type": "FEED"}]
    graph.comments[IG_MEDIA] = [ig_comment("17867301270523379", "Price please 🙏", clock.now())]
    await clock.advance(POLL_S)  # the first poll (at start) found nothing; this one is due
    [polled] = await portal.wait_for_events(1, "message.")
    assert polled["data"]["content"]["text"] == "Price please 🙏"

    # The same comment by webhook (Meta's, late): stored once.
    hook = f"{served_meta.url}/hooks/instagram"
    webhook = recorded_json("ig_comment.json")
    assert (await post_notification(served_meta.session, hook, webhook)).status == 200
    graph.comments[IG_MEDIA].append(ig_comment("17867301270520003", "And in M?", clock.now() + 1))
    await clock.advance(POLL_S)
    messages = await portal.wait_for_events(2, "message.")
    assert [m["data"]["content"]["text"] for m in messages] == ["Price please 🙏", "And in M?"]

    await reply(served_meta, portal, polled["dialog"]["id"], "250 €")
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent"
    public = [c for c in graph.calls if c.edge == "replies"]
    assert public[0].node == "17867301270523379"
    assert public[0].body["message"].endswith("250 €")
