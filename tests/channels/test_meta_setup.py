"""Connecting Meta connectors: the token's permissions checked, the app subscribed, and every
way it can go wrong said clearly, against the Graph stand-in."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.meta.facebook import MESSAGING_FIELDS, FacebookChannel, FacebookCredentials
from channels.meta.instagram import InstagramChannel, InstagramCredentials
from channels.meta.whatsapp import WhatsAppChannel, WhatsAppCredentials
from engine.errors import ConfigError
from tests.channels.conftest import route_for
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    IG_ACCOUNT_ID,
    IG_TOKEN,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    WABA_ID,
    MetaGraphStandIn,
)

APP = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "app_id": APP_ID}


def facebook(graph: MetaGraphStandIn, **extra: Any) -> FacebookChannel:
    fields = {**APP, "page_id": PAGE_ID, "page_access_token": PAGE_TOKEN, **extra}
    fields["graph_api_url"] = graph.graph_api_url
    return FacebookChannel(route_for("facebook"), FacebookCredentials.model_validate(fields))


async def test_connecting_a_page_checks_the_token_and_subscribes_its_fields(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = facebook(meta_graph, receive=["messages", "comments"])
    plan = await channel.connect(session)
    assert meta_graph.subscriptions == {PAGE_ID: (*MESSAGING_FIELDS, "feed")}
    assert plan.scopes == (
        "pages_manage_metadata",
        "pages_messaging",
        "pages_manage_engagement",
        "pages_read_user_content",
    )
    debug = meta_graph.calls[0]
    assert (debug.node, debug.body) == ("debug_token", {"input_token": PAGE_TOKEN})
    await channel.disconnect(session)
    assert meta_graph.subscriptions == {}


async def test_a_bad_token_a_missing_permission_and_another_app_are_named(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(ConfigError, match="invalid or expired: Invalid OAuth access token"):
        await facebook(meta_graph, page_access_token="EAAG-stale").connect(session)
    meta_graph.token_scopes[PAGE_TOKEN] = ("pages_manage_metadata",)
    with pytest.raises(ConfigError, match="lacks pages_messaging: grant them"):
        await facebook(meta_graph).connect(session)
    with pytest.raises(ConfigError, match="app_id is needed"):
        await facebook(meta_graph, app_id=None).connect(session)
    with pytest.raises(ConfigError, match=r"cannot check the token.*code 190"):
        await facebook(meta_graph, app_secret="wrong-secret").connect(session)
    assert meta_graph.subscriptions == {}  # nothing half-connected


async def test_a_failed_subscription_is_a_clear_error(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    meta_graph.fail_next(200, "(#200) Permissions error", after_calls=1)
    with pytest.raises(ConfigError, match=r"POST 134968929707951/subscribed_apps: .*code 200"):
        await facebook(meta_graph).connect(session)


async def test_instagram_and_whatsapp_subscribe_their_own_nodes(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    url = {"graph_api_url": meta_graph.graph_api_url}
    instagram = InstagramChannel(
        route_for("instagram"),
        InstagramCredentials(
            **APP, **url, account_id=IG_ACCOUNT_ID, access_token=IG_TOKEN, receive=("comments",)
        ),
    )
    await instagram.connect(session)
    assert meta_graph.subscriptions[IG_ACCOUNT_ID] == ("comments", "live_comments")
    whatsapp = WhatsAppChannel(
        route_for("whatsapp"),
        WhatsAppCredentials(
            **APP, **url, phone_number_id=PHONE_NUMBER_ID, access_token=WA_TOKEN, waba_id=WABA_ID
        ),
    )
    await whatsapp.connect(session)
    assert meta_graph.subscriptions[WABA_ID] == ()
    no_waba = WhatsAppChannel(
        route_for("whatsapp"),
        whatsapp.credentials.model_copy(update={"waba_id": None}),
    )
    with pytest.raises(ConfigError, match="waba_id is needed"):
        await no_waba.connect(session)
