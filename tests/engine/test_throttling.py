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
    return Provider(api, kit.add_telegram(api), "42", lambda: len(api.calls_to("sendMessage")))


def vk(kit: HostKit, api: VkApiStandIn) -> Provider:
    return Provider(api, kit.add_vk(api), "2000000001", lambda: _vk_sends(api))


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
    await (await host.router("p1")).reply(dialog.dialog_id, body)
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


BACKOFF = None
"""The provider names no wait: the reply sender's first back-off step (0.5 to 1 s)."""


def throttle_telegram_front(kit: HostKit, api: TelegramApiStandIn) -> None:
    api.script(throttled_page(429, retry_after="9", method="sendMessage"))


def throttle_telegram_body(kit: HostKit, api: TelegramApiStandIn) -> None:
    api.rate_limit_next(12, method="sendMessage", header="3")  # the body's wait wins


def throttle_vk_error_6(kit: HostKit, api: VkApiStandIn) -> None:
    api.fail_next(6, "Too many requests per second")


def throttle_vk_front_date(kit: HostKit, api: VkApiStandIn) -> None:
    # The server's clock runs an hour ahead of ours: the wait is read against its Date.
    later, now = server_date(kit, 3600 + 120), server_date(kit, 3600)
    api.script(throttled_page(429, retry_after=later, date=now))


def throttle_viber_status_12(kit: HostKit, api: ViberApiStandIn) -> None:
    api.fail_next(12, "Too many requests")


def throttle_viber_http_429(kit: HostKit, api: ViberApiStandIn) -> None:
    api.script(throttled_page(429, retry_after="30"))


def throttle_meta_613_date(kit: HostKit, api: MetaGraphStandIn) -> None:
    headers = {"Retry-After": server_date(kit, 45), "Date": server_date(kit)}
    api.fail_next(613, "(#613) Calls to this api have exceeded the rate limit.", headers=headers)


def throttle_meta_business_use_case(kit: HostKit, api: MetaGraphStandIn) -> None:
    api.throttle_next(4, regain_minutes=2)


CASES: list[tuple[str, Callable[..., Provider], str, Callable[..., None], float | None]] = [
    ("telegram_api", telegram, "front 429 page, Retry-After", throttle_telegram_front, 9),
    ("telegram_api", telegram, "429 retry_after over header", throttle_telegram_body, 12),
    ("vk_api", vk, "error 6", throttle_vk_error_6, BACKOFF),
    ("vk_api", vk, "front 429, HTTP date", throttle_vk_front_date, 120),
    ("viber_api", viber, "status 12", throttle_viber_status_12, BACKOFF),
    ("viber_api", viber, "HTTP 429, Retry-After", throttle_viber_http_429, 30),
    ("graph", facebook, "613, Retry-After date", throttle_meta_613_date, 45),
    ("graph", facebook, "4, business use case", throttle_meta_business_use_case, 120),
]


@pytest.mark.parametrize(
    ("api_fixture", "add", "throttle", "expected_s"),
    [
        pytest.param(api, add, throttle, wait, id=f"{add.__name__}: {what}")
        for api, add, what, throttle, wait in CASES
    ],
)
async def test_a_throttled_reply_waits_what_the_provider_said_then_goes_once(
    kit: HostKit,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    vk_api: VkApiStandIn,
    viber_api: ViberApiStandIn,
    graph: MetaGraphStandIn,
    api_fixture: str,
    add: Callable[..., Provider],
    throttle: Callable[..., None],
    expected_s: float | None,
) -> None:
    stand_ins = {"telegram_api": telegram_api, "vk_api": vk_api, "viber_api": viber_api}
    api = {**stand_ins, "graph": graph}[api_fixture]
    provider = add(kit, api)
    throttle(kit, api)
    _, wait_s = await reply_once_throttled(kit, portal, provider)
    if expected_s is BACKOFF:
        assert RETRY_S / 2 <= wait_s <= RETRY_S
    else:
        assert wait_s == expected_s
    await sent_after(kit, portal, provider, wait_s)
