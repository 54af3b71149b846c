"""Throttling answers of every provider, through the reply sender on the engine's manual
clock (docs/channels/contract.md, "Throttling answers"): each stand-in answers a reply with
its provider's real throttling body or header once; the reply waits the time the provider
named (a ``Retry-After`` in seconds or as an HTTP date, Telegram's ``retry_after``, Meta's
business-use-case estimate), or the reply sender's back-off where the provider names none
(VK error 6, Viber status 12), and then goes out once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate

import pytest

from engine.api_models import ReplyBody
from engine.delivery.host import MailboxHost
from engine.models import OutboundText, Route
from tests.engine.conftest import LINE_ID, HostKit, eventually
from tests.standins.meta_api import PAGE_ID, PAGE_TOKEN, PSID_EXAMPLE, MetaGraphStandIn
from tests.standins.portal import PortalStandIn
from tests.standins.server import LoopbackServer, throttled_page
from tests.standins.telegram_api import TelegramApiStandIn
from tests.standins.viber_api import ViberApiStandIn
from tests.standins.vk_api import VkApiStandIn

RETRY_S = 1.0
"""The portal's ``retry_initial_s`` and ``retry_max_s``: a back-off waits 0.5 to 1 s."""


@dataclass
class Provider:
    """One connector on its stand-in: how to add it, to throttle it once, to count sends."""

    api: LoopbackServer
    route: Route
    dialog_key: str
    sends: Callable[[], int]


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraphStandIn]:
    async with MetaGraphStandIn() as api:
        yield api


def route(connector_id: str, channel: str) -> Route:
    return Route(portal_id="p1", line_id=LINE_ID, connector_id=connector_id, channel=channel)


def telegram(kit: HostKit, api: TelegramApiStandIn) -> Provider:
    where = route("tg-1", "telegram")
    kit.channels.add(
        where, {"bot_token": api.token, "secret_token": "s", "api_base_url": api.base_url}
    )
    return Provider(api, where, "42", lambda: len(api.calls_to("sendMessage")))


def vk(kit: HostKit, api: VkApiStandIn) -> Provider:
    where = route("vk-1", "vk")
    credentials = {
        "access_token": api.access_token,
        "secret": "vk-secret",
        "confirmation_code": "c0nf1rm",
        "group_id": 193668024,
        "api_base_url": api.base_url,
    }
    kit.channels.add(where, credentials)
    return Provider(api, where, "2000000001", lambda: _vk_sends(api))


def _vk_sends(api: VkApiStandIn) -> int:
    return sum(1 for call in api.calls if call.method == "messages.send")


def viber(kit: HostKit, api: ViberApiStandIn) -> Provider:
    where = route("vb-1", "viber")
    credentials = {"auth_token": api.auth_token, "api_base_url": api.base_url}
    kit.channels.add(where, credentials)
    return Provider(api, where, "u2NYcWleYQgJQkgYdDhfzg==", lambda: _viber_sends(api))


def _viber_sends(api: ViberApiStandIn) -> int:
    return sum(1 for call in api.calls if call.path == "/pa/send_message")


def facebook(kit: HostKit, api: MetaGraphStandIn) -> Provider:
    where = route("fb-1", "facebook")
    credentials = {
        "app_secret": "5f0c1e8d2b7a49d6a3c8e1f0b2d4c6e8",
        "verify_token": "v",
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "graph_api_url": api.graph_api_url,
    }
    kit.channels.add(where, credentials)
    return Provider(api, where, PSID_EXAMPLE, lambda: _graph_sends(api))


def _graph_sends(api: MetaGraphStandIn) -> int:
    return sum(1 for call in api.calls if call.edge == "messages")


async def host_for(kit: HostKit, portal: PortalStandIn) -> MailboxHost:
    config = kit.config(portal, linger_ms=0, retry_initial_s=RETRY_S, retry_max_s=RETRY_S)
    return await kit.host(config)


async def reply_once_throttled(
    kit: HostKit, portal: PortalStandIn, provider: Provider
) -> tuple[MailboxHost, float]:
    """Send a reply the stand-in throttles; returns the host and the wait the engine chose."""
    host = await host_for(kit, portal)
    dialog = await kit.dialog(host, "p1", provider.dialog_key, route=provider.route)
    body = ReplyBody(content=OutboundText(text="Hello"))
    await host.router("p1").reply(dialog.dialog_id, body)
    await eventually(lambda: provider.sends() == 1 and kit.clock.sleepers == 1, what="a retry")
    (stored,) = kit.reader().replies("p1")
    assert stored.attempts == 1
    return host, stored.next_attempt_at - kit.clock.now()


async def sent_after(
    kit: HostKit, portal: PortalStandIn, provider: Provider, wait_s: float
) -> None:
    """Nothing goes out before ``wait_s``; the reply goes out once right after it."""
    await kit.clock.advance(wait_s - 0.01)
    assert provider.sends() == 1
    await kit.clock.advance(0.02)
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.sent"
    assert provider.sends() == 2


def server_date(kit: HostKit, later_s: float = 0.0) -> str:
    return formatdate(kit.clock.now() + later_s, usegmt=True)


async def test_telegram_front_servers_429_page_waits_its_retry_after_header(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    provider = telegram(kit, telegram_api)
    telegram_api.script(throttled_page(429, retry_after="9", method="sendMessage"))
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 9
    await sent_after(kit, portal, provider, 9)


async def test_telegram_body_retry_after_wins_over_the_header(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    provider = telegram(kit, telegram_api)
    telegram_api.rate_limit_next(12, method="sendMessage", header="3")
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 12
    await sent_after(kit, portal, provider, 12)


async def test_vk_error_6_names_no_wait_and_is_backed_off(
    kit: HostKit, portal: PortalStandIn, vk_api: VkApiStandIn
) -> None:
    provider = vk(kit, vk_api)
    vk_api.fail_next(6, "Too many requests per second")
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert RETRY_S / 2 <= wait_s <= RETRY_S  # the first back-off step, with jitter
    await sent_after(kit, portal, provider, wait_s)


async def test_vk_front_servers_429_with_an_http_date_waits_until_then(
    kit: HostKit, portal: PortalStandIn, vk_api: VkApiStandIn
) -> None:
    provider = vk(kit, vk_api)
    # The server's clock runs an hour ahead of ours: the wait is read against its Date.
    page = throttled_page(
        429, retry_after=server_date(kit, 3600 + 120), date=server_date(kit, 3600)
    )
    vk_api.script(page)
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 120
    await sent_after(kit, portal, provider, 120)


async def test_viber_status_12_is_backed_off(
    kit: HostKit, portal: PortalStandIn, viber_api: ViberApiStandIn
) -> None:
    provider = viber(kit, viber_api)
    viber_api.fail_next(12, "Too many requests")
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert RETRY_S / 2 <= wait_s <= RETRY_S
    await sent_after(kit, portal, provider, wait_s)


async def test_viber_http_429_waits_its_retry_after(
    kit: HostKit, portal: PortalStandIn, viber_api: ViberApiStandIn
) -> None:
    provider = viber(kit, viber_api)
    viber_api.script(throttled_page(429, retry_after="30"))
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 30
    await sent_after(kit, portal, provider, 30)


async def test_meta_613_with_a_retry_after_date_waits_until_then(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    provider = facebook(kit, graph)
    headers = {"Retry-After": server_date(kit, 45), "Date": server_date(kit)}
    graph.fail_next(613, "(#613) Calls to this api have exceeded the rate limit.", headers=headers)
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 45
    await sent_after(kit, portal, provider, 45)


async def test_meta_business_use_case_estimate_is_waited_in_minutes(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    provider = facebook(kit, graph)
    graph.throttle_next(4, regain_minutes=2)
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    assert wait_s == 120
    await sent_after(kit, portal, provider, 120)
