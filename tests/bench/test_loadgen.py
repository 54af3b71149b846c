"""The bench's webhooks pass the real channels, and the load generator counts what it sent.

Servers are real aiohttp apps on 127.0.0.1; the channels are built by the registry from the
connector config the bench writes, so a drift in a channel's format or auth fails here.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from bench.floor_server import start_floor_server
from bench.loadgen import CONNECT_ATTEMPTS, MIXED, REPO_ROOT, connector_id, run_load, spawn
from bench.webhooks import WEBHOOKS, Webhooks, latency_stamp_ns, webhooks_for
from channels.base import Channel, RawRequest
from channels.registry import build_channel
from engine.errors import AuthError
from engine.models import InboundMessage, Route, TextContent

CHANNELS = sorted(WEBHOOKS)
SECRET_FIELDS = {"telegram": "secret_token", "vk": "secret", "viber": "auth_token"}


def channel_for(hooks: Webhooks, connector: str, **override: object) -> Channel:
    config = hooks.connector_config(connector, "p1", "l1")
    assert config["channel"] == hooks.channel and config["id"] == connector
    route = Route(portal_id="p1", line_id="l1", connector_id=connector, channel=hooks.channel)
    credentials = dict(config["credentials"])  # type: ignore[call-overload]
    return build_channel(route, {**credentials, **override})


def raw(hooks: Webhooks, connector: str, headers: dict[str, str], body: bytes) -> RawRequest:
    return RawRequest(
        method="POST",
        path=hooks.path(connector),
        headers={name.lower(): value for name, value in headers.items()},
        query={},
        body=body,
    )


def inbound(channel: Channel, request: RawRequest) -> InboundMessage:
    channel.verify(request)
    parsed = channel.parse(request, received_at=1.0)
    assert parsed.ignored == ()
    (message,) = parsed.messages
    return message


@pytest.mark.parametrize("name", CHANNELS)
def test_requests_pass_the_real_channel_in_chat_order(name: str) -> None:
    hooks = webhooks_for(name)
    channel = channel_for(hooks, "b-1")
    chats, by_chat, event_ids = 5, defaultdict(list), set()
    for seq in (1, 2, 3):
        for chat in range(chats):
            sent_ns = time.monotonic_ns()
            headers, body = hooks.request((seq - 1) * chats + chat, chat, seq, sent_ns)
            assert headers["Content-Type"] == channel.webhook_content_type
            message = inbound(channel, raw(hooks, "b-1", headers, body))
            assert isinstance(message.content, TextContent)
            assert latency_stamp_ns(message.content.text) == sent_ns
            assert hooks.chat_number(message.dialog_key) == chat
            by_chat[message.dialog_key].append(message.order_key)
            event_ids.add(message.channel_event_id)
    assert len(event_ids) == 15
    assert len(by_chat) == chats
    assert all(keys == sorted(set(keys)) for keys in by_chat.values())
    assert hooks.path("b-1") == f"/hooks/{name}/b-1"


@pytest.mark.parametrize("name", CHANNELS)
def test_a_connector_with_another_secret_refuses_them(name: str) -> None:
    hooks = webhooks_for(name)
    channel = channel_for(hooks, "b-1", **{SECRET_FIELDS[name]: "another-secret-value"})
    headers, body = hooks.request(0, 0, 1, 1)
    with pytest.raises(AuthError):
        channel.verify(raw(hooks, "b-1", headers, body))


@pytest.mark.parametrize("name", CHANNELS)
def test_run_id_moves_dedup_keys_and_chats_but_not_chat_numbers(name: str) -> None:
    first, second = webhooks_for(name, 0), webhooks_for(name, 1)
    a = inbound(channel_for(first, "b-1"), raw(first, "b-1", *first.request(7, 7, 1, 1)))
    b = inbound(channel_for(second, "b-1"), raw(second, "b-1", *second.request(7, 7, 1, 1)))
    assert a.channel_event_id != b.channel_event_id and a.dialog_key != b.dialog_key
    assert first.chat_number(a.dialog_key) == second.chat_number(b.dialog_key) == 7


@pytest.fixture
async def floor_url() -> AsyncIterator[str]:
    runner, port = await start_floor_server(0)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_total_sends_exactly_n_and_counts_n_200s(floor_url: str) -> None:
    result = await run_load(
        floor_url, "telegram", "bench", connections=8, chats=40, duration_s=None, total=500
    )
    assert (result["sent"], result["ok"], result["errors"]) == (500, 500, 0)
    assert result["status_counts"] == {"200": 500}
    assert result["cpu_s"] > 0 and result["requests_per_s"] > 0


async def test_duration_stops_sending_and_waits_for_answers(floor_url: str) -> None:
    result = await run_load(floor_url, "vk", "bench", connections=4, chats=8, duration_s=0.3)
    assert result["sent"] == result["ok"] > 0 and result["errors"] == 0
    assert 0.3 <= result["duration_s"] < 1.0


async def test_rate_paces_the_aggregate(floor_url: str) -> None:
    result = await run_load(
        floor_url, "viber", "bench", connections=4, chats=8, duration_s=0.5, rate=200
    )
    assert 50 <= result["ok"] <= 101 and result["errors"] == 0


async def test_mixed_load_reaches_each_connector_in_chat_order(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    hooks = {name: webhooks_for(name) for name in CHANNELS}
    channels = {name: channel_for(hooks[name], connector_id("mix", name)) for name in CHANNELS}
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    ids: set[str] = set()

    async def handle(request: web.Request) -> web.Response:
        name = request.path.split("/")[2]
        assert request.path == hooks[name].path(connector_id("mix", name))
        body = await request.read()
        message = inbound(channels[name], raw(hooks[name], "", dict(request.headers), body))
        assert MIXED[hooks[name].chat_number(message.dialog_key) % 3] == name
        seen[name, message.dialog_key].append(message.order_key)
        ids.add(message.id)
        return web.Response(text="ok")

    url = await serve(handle)
    result = await run_load(
        url, "mixed", "mix", connections=6, chats=30, duration_s=None, total=300
    )
    assert (result["sent"], result["ok"], result["errors"]) == (300, 300, 0)
    assert len(ids) == 300 and len(seen) == 30
    assert all(keys == sorted(keys) and len(keys) == 10 for keys in seen.values())
    per_channel = {
        name: sum(len(k) for (n, _), k in seen.items() if n == name) for name in CHANNELS
    }
    assert per_channel == {"telegram": 100, "viber": 100, "vk": 100}


async def test_chunked_and_closing_responses_are_read(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    count = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal count
        await request.read()
        count += 1
        if count % 3 == 0:
            response = web.StreamResponse(status=202)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"accepted")
            await response.write_eof()
            return response
        response = web.Response(status=200 if count % 5 else 503, text="x" * count)
        if count % 7 == 0:
            response.force_close()
        return response

    url = await serve(handle)
    result = await run_load(
        url, "telegram", "b", connections=3, chats=6, duration_s=None, total=105
    )
    assert (result["sent"], result["errors"]) == (105, 0)
    assert result["status_counts"]["503"] == 14 and result["ok"] == 91


async def test_spawned_processes_split_the_load() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor_server",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 10)).decode()
        assert line.startswith("ready ")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        result = await spawn(
            url, "mixed", "b", connections=4, chats=20, duration_s=None, total=400, processes=2
        )
    finally:
        server.terminate()
        await server.wait()
    assert (result["sent"], result["ok"], result["errors"], result["processes"]) == (400, 400, 0, 2)


async def test_a_request_whose_connection_drops_is_counted_and_resent() -> None:
    answered: list[int] = []
    received = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                update = orjson.loads(await reader.readexactly(length))
                received += 1
                if received % 10 == 0:
                    return  # drop the connection without an answer
                answered.append(update["update_id"])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_load(
            f"http://127.0.0.1:{port}",
            "telegram",
            "b",
            connections=2,
            chats=4,
            duration_s=None,
            total=90,
        )
    assert (result["ok"], result["errors"], result["sent"]) == (
        90,
        9,
        99,
    )  # the 10th, 20th, ... 90th were dropped
    assert sorted(answered) == list(range(90))


async def test_a_refused_connection_is_an_error_not_a_hang() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        result = await run_load(
            f"http://127.0.0.1:{port}", "vk", "b", connections=1, chats=1, duration_s=None, total=5
        )
    assert (result["sent"], result["ok"], result["errors"]) == (0, 0, CONNECT_ATTEMPTS)


def test_load_spread_over_portals_reaches_each_portals_connector() -> None:
    from bench.loadgen import RequestBuilder

    builder = RequestBuilder("http://127.0.0.1:8080", "mixed", "p", run_id=0, portals=4)
    targets = set()
    for chat in range(24):
        request_line = builder.build(chat, chat, 1).split(b"\r\n", 1)[0].decode()
        targets.add(request_line.split()[1])
    assert targets == {
        f"/hooks/{channel}/p{portal}-{channel}"
        for portal in range(4)
        for channel in ("telegram", "vk", "viber")
    }
