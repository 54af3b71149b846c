"""Meta's messaging windows end to end in one process, on the manual clock (never slept): per
connector (24 hours, 7 days under ``HUMAN_AGENT``), per dialog (a public comment reply has
none, a private one is one per comment within 7 days), a reaction opening the window again
and a receipt not (docs/channels/facebook.md, "Windows"); WhatsApp's template after its
window (docs/channels/whatsapp.md, "Outside the window")."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.clock import ManualClock
from tests.engine.meta_kit import APP, portal_reply, post, reply
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, serving
from tests.standins.meta_api import (
    FEED_PAGE_ID,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    WA_TOKEN,
    MetaGraphStandIn,
    changes_entry,
    messaging_entry,
    notification,
    recorded_json,
)
from tests.standins.portal import PortalStandIn

HUMAN_PAGE = "134968929700077"
PRIVATE_PAGE = "370873143300088"
ALICE, BORIS = "7689966077685933", "7689966077600001"
HOUR_S = 3600.0
DAY_S = 24 * HOUR_S


@pytest.fixture
async def served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    portal.now = clock.now  # the engine signs its batches at the manual clock's days
    graph.accounts.messenger[HUMAN_PAGE] = PAGE_TOKEN
    graph.accounts.messenger[PRIVATE_PAGE] = PAGE_TOKEN
    app = {**APP, "graph_api_url": graph.graph_api_url}
    page = {**app, "page_access_token": PAGE_TOKEN}
    comments = {"receive": ["comments"]}
    connectors = [
        connector("fb", "facebook", **page, page_id=PAGE_ID),
        connector("fbh", "facebook", **page, page_id=HUMAN_PAGE, message_tag="HUMAN_AGENT"),
        connector("fbc", "facebook", **page, page_id=FEED_PAGE_ID, **comments),
        connector(
            "fbp", "facebook", **page, page_id=PRIVATE_PAGE, comment_replies="private", **comments
        ),
    ]
    async with serving(tmp_path, clock, session, portal, connectors) as running:
        yield running


def messaging(page: str, sender: str, **event: Any) -> dict[str, Any]:
    stamp = {"sender": {"id": sender}, "recipient": {"id": page}, "timestamp": 1}
    return notification("page", messaging_entry(page, {**stamp, **event}))


def feed(page: str, comment_id: str, parent_id: str | None = None) -> dict[str, Any]:
    value = recorded_json("fb_feed_comment.json")["entry"][0]["changes"][0]["value"]
    value = {**value, "comment_id": comment_id, "created_time": int(time.time())}
    if parent_id is not None:
        value["parent_id"] = parent_id
    return notification("page", changes_entry(page, "feed", value))


class Portal:
    """The portal's side of the test: webhooks in, replies out, at the engine's clock."""

    def __init__(self, served: Served, portal: PortalStandIn, clock: ManualClock) -> None:
        self.served, self.portal, self.clock = served, portal, clock

    async def post(self, body: dict[str, Any]) -> None:
        await post(self.served, "facebook", body)

    async def accepted(self, dialog_id: str, text: str) -> None:
        await reply(self.served, self.portal, dialog_id, text)

    async def refused(self, dialog_id: str, closed_at: float) -> str:
        status, body = await portal_reply(self.served, self.portal, dialog_id, "too late?")
        assert (status, body["error"], body["closed_at"]) == (409, "window_closed", closed_at)
        return str(body["message"])


async def test_messenger_windows_per_connector_and_a_reaction_opening_it_again(
    served: Served, portal: PortalStandIn, graph: MetaGraphStandIn, clock: ManualClock
) -> None:
    meta = Portal(served, portal, clock)
    t0 = clock.now()
    await meta.post(messaging(PAGE_ID, ALICE, message={"mid": "m_w1", "text": "Привет 👋"}))
    await meta.post(messaging(HUMAN_PAGE, BORIS, message={"mid": "m_w2", "text": "Hi"}))
    messages = await portal.wait_for_events(2, "message.")
    dialogs = {m["data"]["route"]["connector_id"]: m["dialog"] for m in messages}
    assert dialogs["fb"]["window_closes_at"] == t0 + DAY_S
    assert dialogs["fbh"]["window_closes_at"] == t0 + 7 * DAY_S
    alice, boris = dialogs["fb"]["id"], dialogs["fbh"]["id"]

    await clock.advance(23 * HOUR_S)
    reaction = {"reaction": "love", "emoji": "❤️", "action": "react", "mid": "m_w1"}
    await meta.post(messaging(PAGE_ID, ALICE, reaction=reaction))
    await meta.post(messaging(HUMAN_PAGE, BORIS, read={"watermark": 1}))
    events = await portal.wait_for_events(2, "channel.")
    by_dialog = {e["dialog"]["id"]: e for e in events}
    reacted_at = t0 + 23 * HOUR_S
    assert by_dialog[alice]["data"]["kind"] == "reaction"
    assert by_dialog[alice]["dialog"]["window_closes_at"] == reacted_at + DAY_S
    assert by_dialog[boris]["dialog"]["window_closes_at"] == t0 + 7 * DAY_S  # a receipt: no

    await clock.advance(2 * HOUR_S)  # a day after Alice wrote, two hours after she reacted
    await meta.accepted(alice, "Здравствуйте!")
    await meta.accepted(boris, "Hello Boris")
    assert {e["type"] for e in await portal.wait_for_events(2, "reply.")} == {"reply.sent"}
    bodies = {body["recipient"]["id"]: body for body in graph.sent()}
    assert bodies[ALICE]["messaging_type"] == "RESPONSE"
    assert (bodies[BORIS]["messaging_type"], bodies[BORIS]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    await clock.advance(23 * HOUR_S)  # a day after the reaction
    words = await meta.refused(alice, reacted_at + DAY_S)
    assert "24-hour messaging window" in words
    await meta.accepted(boris, "Still here, two days on")
    await clock.advance(6 * DAY_S)
    assert "HUMAN_AGENT tag's 7 days" in await meta.refused(boris, t0 + 7 * DAY_S)
    assert len(portal.of_types("reply.")) == 3  # nothing refused was stored or sent


async def test_comment_windows_public_none_private_one_per_comment_within_7_days(
    served: Served, portal: PortalStandIn, graph: MetaGraphStandIn, clock: ManualClock
) -> None:
    meta = Portal(served, portal, clock)
    t0 = clock.now()
    await meta.post(feed(FEED_PAGE_ID, "690891113073877_1"))
    await meta.post(feed(PRIVATE_PAGE, "690891113073877_2"))
    messages = await portal.wait_for_events(2, "message.")
    dialogs = {m["data"]["route"]["connector_id"]: m["dialog"] for m in messages}
    assert dialogs["fbc"]["window_closes_at"] is None
    assert dialogs["fbp"]["window_closes_at"] == t0 + 7 * DAY_S
    public, private = dialogs["fbc"]["id"], dialogs["fbp"]["id"]

    await clock.advance(3 * DAY_S)
    await meta.accepted(public, "Free shipping!")
    await meta.accepted(private, "Sent you the price in Messenger")
    replied_at = clock.now()
    words = await meta.refused(private, replied_at)  # one private reply per comment
    assert "one reply" in words
    sent = await portal.wait_for_events(2, "reply.")
    assert {e["type"] for e in sent} == {"reply.sent"}
    shown = next(e for e in sent if e["dialog"]["id"] == private)["dialog"]
    assert shown["window_closes_at"] == replied_at
    assert graph.sent("comments")[0]["message"].endswith("Free shipping!")
    assert graph.sent("messages")[0]["recipient"] == {"comment_id": "690891113073877_2"}
    await meta.accepted(public, "And once more in public")  # no window: any number
    assert len(await portal.wait_for_events(3, "reply.")) == 3

    # The customer comments again in the thread: one more private reply, to that comment
    # (the dialog's address), which Meta takes (the first comment has had its one).
    await clock.advance(HOUR_S)
    await meta.post(feed(PRIVATE_PAGE, "690891113073877_3", parent_id="690891113073877_2"))
    [*_, again] = await portal.wait_for_events(3, "message.")
    assert again["dialog"]["id"] == private
    assert again["dialog"]["window_closes_at"] == clock.now() + 7 * DAY_S
    await meta.accepted(private, "And the size chart too")
    [*_, last] = await portal.wait_for_events(4, "reply.")
    assert last["type"] == "reply.sent", last
    assert graph.sent("messages")[-1]["recipient"] == {"comment_id": "690891113073877_3"}


PLAIN_NUMBER = "106540352200011"
TEMPLATE = {"name": "order_update", "language": "en_US", "body_parameters": ["{text}"]}


@pytest.fixture
async def served_whatsapp(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    portal.now = clock.now
    graph.accounts.whatsapp[PLAIN_NUMBER] = WA_TOKEN
    app = {**APP, "graph_api_url": graph.graph_api_url, "access_token": WA_TOKEN}
    connectors = [
        connector(
            "wa",
            "whatsapp",
            **app,
            phone_number_id=PHONE_NUMBER_ID,
            outside_window_template=TEMPLATE,
        ),
        connector("wa2", "whatsapp", **app, phone_number_id=PLAIN_NUMBER),
    ]
    async with serving(tmp_path, clock, session, portal, connectors) as running:
        yield running


def wa_text(phone_number_id: str, wamid: str, text: str) -> dict[str, Any]:
    body = recorded_json("wa_text.json")
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = phone_number_id
    value["messages"][0].update(id=wamid, timestamp=str(int(time.time())), text={"body": text})
    return body


async def test_whatsapp_outside_the_window_goes_as_the_connectors_template(
    served_whatsapp: Served, portal: PortalStandIn, graph: MetaGraphStandIn, clock: ManualClock
) -> None:
    meta = Portal(served_whatsapp, portal, clock)
    t0 = clock.now()
    for number, wamid in ((PHONE_NUMBER_ID, "wamid.T1"), (PLAIN_NUMBER, "wamid.T2")):
        await post(served_whatsapp, "whatsapp", wa_text(number, wamid, "Где мой заказ? 📦"))
    messages = await portal.wait_for_events(2, "message.")
    dialogs = {m["data"]["route"]["connector_id"]: m["dialog"]["id"] for m in messages}

    await clock.advance(DAY_S + 60)
    await meta.accepted(dialogs["wa"], "Ваш заказ\nв пути")
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent"
    assert (sent["data"]["form"], sent["data"]["template"]) == ("template", "order_update (en_US)")
    [body] = graph.sent()
    assert body["type"] == "template" and body["to"] == "16505551234"
    assert body["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Ваш заказ в пути"}
    ]
    # A connector without a template keeps the refusal; nothing is stored or sent.
    assert "the messaging window" in await meta.refused(dialogs["wa2"], t0 + DAY_S)
    assert len(graph.sent()) == 1

    # Meta refuses the template (not approved any more): reply.failed names the form.
    graph.templates.clear()
    await meta.accepted(dialogs["wa"], "Ещё раз")
    [_, failed] = await portal.wait_for_events(2, "reply.")
    assert (failed["type"], failed["data"]["form"]) == ("reply.failed", "template")
    assert "no such approved template" in failed["data"]["error"]

    # The customer writes again: free-form messages again.
    await post(served_whatsapp, "whatsapp", wa_text(PHONE_NUMBER_ID, "wamid.T3", "Спасибо!"))
    await portal.wait_for_events(3, "message.")
    await meta.accepted(dialogs["wa"], "Пожалуйста")
    [*_, free] = await portal.wait_for_events(3, "reply.")
    assert (free["type"], free["data"]["form"], free["data"]["template"]) == (
        "reply.sent",
        "message",
        None,
    )
    assert graph.sent()[-1]["type"] == "text"
