"""Connecting Meta connectors: the token's permissions checked, the app's webhook pointed at
the engine (Meta's GET handshake included), the app installed on the page, account or
business account, and every way it can go wrong said clearly, against the Graph stand-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from channels.base import Channel, WebhookParse
from channels.meta.connect_models import FacebookConnect, InstagramConnect, WhatsAppConnect
from channels.meta.facebook import MESSAGING_FIELDS, FacebookChannel
from channels.meta.instagram import InstagramChannel
from channels.meta.whatsapp import WhatsAppChannel
from engine.errors import ProviderSetupError
from tests.channels.conftest import route_for
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    IG_ACCOUNT_ID,
    IG_TOKEN,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    WA_TOKEN,
    WABA_ID,
    MetaGraphStandIn,
)

StartWebhook = Callable[[Channel], Awaitable[str]]


def given_page(graph: MetaGraphStandIn, **extra: Any) -> FacebookConnect:
    fields = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "graph_api_url": graph.graph_api_url,
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        **extra,
    }
    return FacebookConnect.model_validate(fields)


async def connected(
    cls: type[Channel],
    given: Any,
    session: aiohttp.ClientSession,
    start: StartWebhook,
) -> Channel:
    """prepare_connect, store (here: serve the webhook), subscribe: as the engine does."""
    credentials = await cls.prepare_connect(session, given)
    channel = cls(route_for(cls.name), cls.credentials_model.model_validate(credentials))
    url = await start(channel)
    await channel.subscribe(session, url)
    return channel


async def test_connecting_a_page_checks_the_token_points_the_app_and_installs_it(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    channel_webhook: tuple[StartWebhook, list[WebhookParse]],
) -> None:
    start, _ = channel_webhook
    given = given_page(meta_graph, receive=["messages", "comments"])
    channel = await connected(FacebookChannel, given, session, start)
    verify_token = channel.credentials.verify_token  # type: ignore[attr-defined]
    assert len(verify_token) >= 32
    [debug, app, install] = meta_graph.calls
    assert (debug.node, debug.body) == ("debug_token", {"input_token": PAGE_TOKEN})
    assert (app.node, app.edge) == (APP_ID, "subscriptions")
    subscription = meta_graph.app_subscriptions["page"]
    assert subscription["verify_token"] == verify_token
    assert subscription["fields"] == ",".join([*MESSAGING_FIELDS, "feed"])
    assert (install.node, install.token) == (PAGE_ID, PAGE_TOKEN)
    assert meta_graph.subscriptions == {PAGE_ID: (*MESSAGING_FIELDS, "feed")}
    await channel.unsubscribe(session, "")
    assert meta_graph.subscriptions == {}


async def test_a_bad_token_a_missing_permission_and_a_wrong_secret_are_named(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    stale = given_page(meta_graph, page_access_token="EAAG-stale")
    with pytest.raises(ProviderSetupError, match="invalid or expired: Invalid OAuth access"):
        await FacebookChannel.prepare_connect(session, stale)
    meta_graph.token_scopes[PAGE_TOKEN] = ("pages_manage_metadata",)
    with pytest.raises(ProviderSetupError, match="lacks pages_messaging: grant them"):
        await FacebookChannel.prepare_connect(session, given_page(meta_graph))
    with pytest.raises(ProviderSetupError, match=r"debug_token: .*code 190"):
        await FacebookChannel.prepare_connect(session, given_page(meta_graph, app_secret="x"))
    assert meta_graph.subscriptions == {} and meta_graph.app_subscriptions == {}


async def test_a_webhook_that_fails_the_handshake_is_not_subscribed(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession, closed_port_url: str
) -> None:
    credentials = await FacebookChannel.prepare_connect(session, given_page(meta_graph))
    channel = FacebookChannel(
        route_for("facebook"), FacebookChannel.credentials_model.model_validate(credentials)
    )
    with pytest.raises(ProviderSetupError, match="Callback verification failed"):
        await channel.subscribe(session, f"{closed_port_url}/hooks/facebook")
    assert meta_graph.subscriptions == {}


async def test_instagram_and_whatsapp_install_the_app_on_their_own_nodes(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    channel_webhook: tuple[StartWebhook, list[WebhookParse]],
) -> None:
    start, _ = channel_webhook
    app = {"app_id": APP_ID, "app_secret": APP_SECRET, "graph_api_url": meta_graph.graph_api_url}
    instagram = InstagramConnect(
        **app, account_id=IG_ACCOUNT_ID, access_token=IG_TOKEN, receive=("comments",)
    )
    await connected(InstagramChannel, instagram, session, start)
    assert meta_graph.subscriptions[IG_ACCOUNT_ID] == ("comments", "live_comments")
    assert meta_graph.app_subscriptions["instagram"]["fields"] == "comments,live_comments"
    whatsapp = WhatsAppConnect(
        **app, phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID, access_token=WA_TOKEN
    )
    await connected(WhatsAppChannel, whatsapp, session, start)
    assert meta_graph.subscriptions[WABA_ID] == ()
    assert meta_graph.app_subscriptions["whatsapp_business_account"]["fields"] == "messages"
    meta_graph.token_scopes[WA_TOKEN] = ("whatsapp_business_messaging",)
    with pytest.raises(ProviderSetupError, match="lacks whatsapp_business_management"):
        await WhatsAppChannel.prepare_connect(session, whatsapp)
