"""Connecting Meta's channels in one step through the admin API and the command line, in one
process, against the Graph stand-in: the token checked, the app's webhook pointed at the
engine (the stand-in runs Meta's GET handshake against it), the app installed on the page or
business account, a customer's message through the new webhook and the reply back, clear
refusals, and disconnecting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from engine.cli import main
from tests.engine.one_process import Served
from tests.engine.test_connect import connect, connect_body, reply_to_first_message
from tests.engine.web_kit import ADMIN, admin
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    WA_TOKEN,
    WABA_ID,
    MetaGraphStandIn,
    messaging_entry,
    notification,
    post_notification,
)
from tests.standins.portal import PortalStandIn

PSID = "7689966077685933"


def page_settings(graph: MetaGraphStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "graph_api_url": graph.graph_api_url,
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        **extra,
    }


async def test_a_page_connects_in_one_step_and_carries_messages_both_ways(
    served: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    status, done = await connect(served, "fb-new", connect_body("facebook", page_settings(graph)))

    assert status == 200, done
    assert done["webhook_url"] == f"{served.url}/hooks/facebook"
    subscription = graph.app_subscriptions["page"]
    assert subscription["callback_url"] == done["webhook_url"]
    stored = served.engine.registry.connectors["fb-new"]
    assert stored.credentials["verify_token"] == subscription["verify_token"]
    assert "messages" in graph.subscriptions[PAGE_ID]

    event = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": "m_connect_1", "text": "Привет! Есть доставка?"},
    }
    body = notification("page", messaging_entry(PAGE_ID, event))
    assert await post_notification(served.session, done["webhook_url"], body) == (
        200,
        "EVENT_RECEIVED",
    )
    await reply_to_first_message(served, portal, "Да, есть 🚚")
    assert graph.sent()[-1]["recipient"] == {"id": PSID}

    status, gone = await admin(served, "POST", "/admin/v1/connectors/fb-new/disconnect")
    assert (status, gone["unsubscribed"]) == (200, True)
    assert PAGE_ID not in graph.subscriptions
    assert "fb-new" not in served.engine.registry.connectors


async def test_a_token_without_a_permission_is_refused_and_nothing_is_stored(
    served: Served, graph: MetaGraphStandIn
) -> None:
    graph.token_scopes[PAGE_TOKEN] = ("pages_manage_metadata",)
    status, body = await connect(served, "fb-bad", connect_body("facebook", page_settings(graph)))
    assert (status, body["error"]) == (422, "provider_refused")
    assert "lacks pages_messaging" in body["message"]
    assert "fb-bad" not in served.engine.registry.connectors
    assert graph.app_subscriptions == {}


async def test_openlines_connect_whatsapp_and_instagram_comments_from_the_command_line(
    served: Served, graph: MetaGraphStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_options = ["--engine", served.url, "--admin-token", ADMIN]
    app = ["--app-id", APP_ID, "--app-secret", APP_SECRET, "--graph-api-url", graph.graph_api_url]
    whatsapp = [
        "connect", "whatsapp", "--id", "wa-cli", "--portal", "p1", "--line", "support",
        *app, "--phone-number-id", PHONE_NUMBER_ID, "--waba-id", WABA_ID,
        *admin_options,
    ]  # fmt: skip
    wrong = await asyncio.to_thread(main, [*whatsapp, "--access-token", "EAAG-wrong"])
    code = await asyncio.to_thread(main, [*whatsapp, "--access-token", WA_TOKEN])
    instagram = [
        "connect", "instagram", "--id", "ig-cli", "--portal", "p1", "--line", "support",
        *app, "--account-id", "17841405309211844", "--access-token",
        "EAAGig-token-17841405309211844", "--receive", "messages,comments",
        "--message-tag", "HUMAN_AGENT", *admin_options,
    ]  # fmt: skip
    ig_code = await asyncio.to_thread(main, instagram)
    gone = await asyncio.to_thread(main, ["disconnect", "wa-cli", *admin_options])

    out, err = capsys.readouterr()
    [refusal] = [line for line in err.splitlines() if line.startswith("openlines: connect")]
    assert wrong == 1 and "invalid or expired" in refusal and "EAAG-wrong" not in refusal
    assert code == 0, err
    assert f"the provider posts to {served.url}/hooks/whatsapp" in out
    assert ig_code == 0, err
    ig = served.engine.registry.connectors["ig-cli"].credentials
    assert (ig["receive"], ig["message_tag"]) == (["messages", "comments"], "HUMAN_AGENT")
    assert graph.app_subscriptions["instagram"]["callback_url"] == f"{served.url}/hooks/instagram"
    assert gone == 0 and WABA_ID not in graph.subscriptions
