"""Fixtures for channel tests: loopback stand-ins, an HTTP session, and a minimal webhook;
and the few helpers every channel's tests build requests with.

Channel tests never start Ray or the engine: a channel is exercised through its contract,
with provider stand-ins as real aiohttp servers on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from channels.base import Channel, RawRequest, WebhookParse
from engine.errors import EngineError
from engine.models import Route
from tests.standins.custom_receiver import CustomReceiverStandIn
from tests.standins.meta_api import MetaGraphStandIn
from tests.standins.telegram_api import TelegramApiStandIn
from tests.standins.viber_api import ViberApiStandIn
from tests.standins.vk_api import VkApiStandIn

CUSTOM_SECRET = "custom-signing-secret-0123456789"
FIXED_NOW_S = 1_776_050_000.0


def route_for(channel: str) -> Route:
    return Route(portal_id="p1", line_id="l1", connector_id=f"{channel}-1", channel=channel)


def webhook_post(
    channel: str,
    body: bytes | dict[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> RawRequest:
    """A provider's JSON POST to the webhook of ``route_for(channel)`` as the engine hands it
    over (give header names lower-cased); a dict body is encoded with orjson, bytes go as
    they are."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return RawRequest(
        method="POST",
        path=f"/hooks/{channel}/{channel}-1",
        headers={"content-type": "application/json", **(headers or {})},
        query=dict(query or {}),
        body=raw,
    )


def verify_and_parse(channel: Channel, request: RawRequest) -> WebhookParse:
    """The inbound steps in the engine's order, received at ``FIXED_NOW_S``."""
    channel.verify(request)
    return channel.parse(request, received_at=FIXED_NOW_S)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api


@pytest.fixture
async def vk_api() -> AsyncIterator[VkApiStandIn]:
    async with VkApiStandIn() as api:
        yield api


@pytest.fixture
async def viber_api() -> AsyncIterator[ViberApiStandIn]:
    async with ViberApiStandIn() as api:
        yield api


@pytest.fixture
async def meta_graph() -> AsyncIterator[MetaGraphStandIn]:
    async with MetaGraphStandIn() as api:
        yield api


@pytest.fixture
async def custom_receiver() -> AsyncIterator[CustomReceiverStandIn]:
    async with CustomReceiverStandIn(CUSTOM_SECRET, now=lambda: FIXED_NOW_S) as receiver:
        yield receiver


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: its port was bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


StartWebhook = Callable[[Channel], Awaitable[str]]


@pytest.fixture
async def channel_webhook() -> AsyncIterator[tuple[StartWebhook, list[WebhookParse]]]:
    """Serve a channel's inbound steps (verify, then parse) the way the engine orders them,
    and its GET handshake.

    Yields a function that starts the server for a channel and returns its URL, and the list
    the parses are appended to. Refusals answer the error's status and reason.
    """
    parses: list[WebhookParse] = []
    runners: list[web.AppRunner] = []

    async def start(channel: Channel) -> str:
        async def handle(request: web.Request) -> web.Response:
            raw = RawRequest(
                method=request.method,
                path=request.path,
                headers={name.lower(): value for name, value in request.headers.items()},
                query=dict(request.query),
                body=await request.read(),
            )
            try:
                if request.method == "GET":
                    reply = channel.handshake(raw)
                    return web.Response(status=reply.status, body=reply.body)
                parsed = verify_and_parse(channel, raw)
            except EngineError as exc:
                return web.Response(status=exc.http_status, text=f"{exc.reason}: {exc}")
            parses.append(parsed)
            return web.Response(status=parsed.reply.status, body=parsed.reply.body)

        app = web.Application()
        app.router.add_post("/hook", handle)
        app.router.add_get("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/hook"

    yield start, parses
    for runner in runners:
        await runner.cleanup()
