"""Fixtures for channel tests: loopback stand-ins, an HTTP session, and a minimal webhook.

Channel tests never start Ray or the engine: a channel is exercised through its contract,
with provider stand-ins as real aiohttp servers on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from channels.base import Channel, RawRequest, WebhookParse
from engine.errors import EngineError
from engine.models import Route
from tests.standins.custom_receiver import CustomReceiverStandIn
from tests.standins.telegram_api import TelegramApiStandIn

CUSTOM_SECRET = "custom-signing-secret-0123456789"
FIXED_NOW_S = 1_776_050_000.0


def route_for(channel: str) -> Route:
    return Route(portal_id="p1", line_id="l1", connector_id=f"{channel}-1", channel=channel)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api


@pytest.fixture
async def custom_receiver() -> AsyncIterator[CustomReceiverStandIn]:
    async with CustomReceiverStandIn(CUSTOM_SECRET, now=lambda: FIXED_NOW_S) as receiver:
        yield receiver


StartWebhook = Callable[[Channel], Awaitable[str]]


@pytest.fixture
async def channel_webhook() -> AsyncIterator[tuple[StartWebhook, list[WebhookParse]]]:
    """Serve a channel's inbound steps (verify, then parse) the way the engine orders them.

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
                channel.verify(raw)
                parsed = channel.parse(raw, received_at=FIXED_NOW_S)
            except EngineError as exc:
                return web.Response(status=exc.http_status, text=f"{exc.reason}: {exc}")
            parses.append(parsed)
            return web.Response(status=parsed.reply.status, body=parsed.reply.body)

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/hook"

    yield start, parses
    for runner in runners:
        await runner.cleanup()
