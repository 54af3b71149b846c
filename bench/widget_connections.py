"""The widget's scale: idle live connections one channel actor holds, what each costs, and
the message rate through the widget path (docs/channels/widget.md, "Scale").

The scenario (``widget_connections``, in ``python -m bench``) starts the engine as a real
``openlines run`` with one channel actor and a widget connector, and this module as a
separate visitor process (so the visitors' memory is not the engine's):

1. ``visitors`` sessions (``POST /session``), then as many live WebSockets, each sending its
   hello and waiting for the engine's ``live`` frame; the channel actor's memory (USS) is
   read between the two and after, so ``(after - before) / connections`` is what one idle visitor
   costs, everything included (socket objects, aiohttp's request and WebSocket, the handler
   task, the live hub's entry);
2. ``senders`` of those visitors then send messages one after another for ``send_s``
   seconds (``POST /messages``, each durable in the widget log and the intake before its
   answer), and each waits for its own message to come back on its live connection: the
   rate and the acknowledgement and echo latencies (the whole live path: the log, the hub's
   tail, the WebSocket).

    python -m bench.widget_connections --url http://127.0.0.1:8080 --widget W \\
        --visitors 10000 --senders 32 --send-s 10

prints a JSON line per phase; between the phases it waits for a line on stdin (the
scenario reads the engine's memory then).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench.histogram import LatencyHistogram

ORIGIN = "http://bench.test"
"""The origin the bench's widget allows (its visitors send it as browsers do)."""


class Visitors:
    def __init__(self, url: str, widget_id: str) -> None:
        self.base = f"{url}/widget/{widget_id}"
        self.tokens: list[str] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.echoes: dict[str, asyncio.Future[float]] = {}
        self.readers: list[asyncio.Task[None]] = []

    async def sessions(self, session: aiohttp.ClientSession, count: int, parallel: int) -> None:
        async def one() -> None:
            async with session.post(
                f"{self.base}/session",
                data=b"{}",
                headers={"Origin": ORIGIN, "Content-Type": "application/json"},
            ) as answer:
                assert answer.status == 201, await answer.text()
                self.tokens.append((await answer.json())["token"])

        await _in_parallel([one for _ in range(count)], parallel)

    async def connect(self, session: aiohttp.ClientSession, parallel: int) -> None:
        async def one(token: str) -> None:
            ws = await session.ws_connect(
                f"{self.base}/live".replace("http", "ws", 1),
                headers={"Origin": ORIGIN},
                autoping=True,
            )
            await ws.send_str(orjson.dumps({"token": token, "after": 0}).decode())
            frame = await ws.receive(timeout=60)
            assert orjson.loads(frame.data).get("live") is True, frame
            self.sockets.append(ws)
            # Read every connection, as a browser does: aiohttp answers the engine's
            # heartbeat pings only while someone reads, and an unanswered ping ends it.
            self.readers.append(asyncio.create_task(self._read(ws)))

        await _in_parallel([functools.partial(one, token) for token in self.tokens], parallel)

    async def send_for(
        self, session: aiohttp.ClientSession, senders: int, seconds: float
    ) -> dict[str, Any]:
        """Each sender: a message, its answer, its echo on the live connection; again."""
        acks: list[float] = []
        echoes: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def sender(index: int) -> None:
            token = self.tokens[index]
            headers = {
                "Origin": ORIGIN,
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            }
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                client_id = f"b{index}-{n}"
                echo = asyncio.get_running_loop().create_future()
                self.echoes[client_id] = echo
                began = time.perf_counter()
                body = orjson.dumps({"client_id": client_id, "text": f"bench {index} {n}"})
                async with session.post(
                    f"{self.base}/messages", data=body, headers=headers
                ) as answer:
                    assert answer.status == 200, await answer.text()
                    await answer.read()
                acks.append(time.perf_counter() - began)
                echoes.append(await asyncio.wait_for(echo, 30) - began)

        began = time.perf_counter()
        await asyncio.gather(*(sender(i) for i in range(senders)))
        elapsed = time.perf_counter() - began
        return {
            "senders": senders,
            "messages": len(acks),
            "seconds": round(elapsed, 2),
            "messages_per_s": round(len(acks) / elapsed, 1),
            "ack_ms": _ms(acks),
            "echo_ms": _ms(echoes),
        }

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Echoes of the senders' messages; every other frame is read and dropped."""
        async for message in ws:
            frame = orjson.loads(message.data)
            echo = self.echoes.pop(frame.get("client_id", ""), None)
            if echo is not None and not echo.done():
                echo.set_result(time.perf_counter())

    async def close(self) -> None:
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def _ms(seconds: list[float]) -> dict[str, float]:
    histogram = LatencyHistogram()
    for value in seconds:
        histogram.add(int(value * 1e6))
    return histogram.summary_ms()


async def _in_parallel(jobs: list[Any], parallel: int) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(parallel)))


async def main_async(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        visitors = Visitors(args.url, args.widget)
        began = time.perf_counter()
        await visitors.sessions(session, args.visitors, 64)
        sessions_s = time.perf_counter() - began
        _say({"phase": "sessions", "sessions_per_s": round(args.visitors / sessions_s, 1)})
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        began = time.perf_counter()
        await visitors.connect(session, 256)
        connect_s = time.perf_counter() - began
        _say(
            {
                "phase": "connected",
                "connections": len(visitors.sockets),
                "connections_per_s": round(len(visitors.sockets) / connect_s, 1),
            }
        )
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        _say({"phase": "sent", **await visitors.send_for(session, args.senders, args.send_s)})
        await visitors.close()


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")
    sys.stdout.flush()


async def scenario(visitors: int, senders: int, send_s: float) -> dict[str, Any]:
    """The engine with one channel actor and a widget; this module's visitors against it."""
    from bench.stage import LINE, Stage

    widget_id = "bench-widget-0001"
    connector = {
        "id": "p0-widget",
        "channel": "widget",
        "portal": "p0",
        "line": LINE,
        "credentials": {
            "widget_id": widget_id,
            "allowed_origins": [ORIGIN],
            "visitor_messages_per_minute": 1_000_000,
            "address_requests_per_minute": 1_000_000_000,
        },
    }
    stage = Stage(
        ["p0"], channels=(), channel_actors=1, engine_overrides={"connectors": [connector]}
    )
    await stage.start()
    try:
        assert stage.engine is not None
        started_mb = stage.engine.memory_mb_by_role()["ChannelActor"]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.widget_connections",
            "--url",
            stage.url,
            "--widget",
            widget_id,
            "--visitors",
            str(visitors),
            "--senders",
            str(senders),
            "--send-s",
            str(send_s),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        sessions = orjson.loads(await process.stdout.readline())
        sessions.pop("phase")
        # Sessions are made: what the connections add is theirs alone.
        before_mb = stage.engine.memory_mb_by_role()["ChannelActor"]
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        connected = orjson.loads(await process.stdout.readline())
        connected.pop("phase")
        held_mb = stage.engine.memory_mb_by_role()["ChannelActor"]
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        sent = orjson.loads(await process.stdout.readline())
        sent.pop("phase")
        await process.wait()
        delivered = await stage.wait_delivered(sent["messages"], timeout_s=120)
        per_connection_kb = (held_mb - before_mb) * 1000 / max(1, connected["connections"])
        return {
            "idle": {
                **connected,
                **sessions,
                "channel_actor_mb_started": started_mb,
                "channel_actor_mb_before": before_mb,
                "channel_actor_mb_holding": held_mb,
                "kb_per_connection": round(per_connection_kb, 2),
                "target_kb_per_connection": 20,
                "passed": connected["connections"] >= visitors and per_connection_kb < 20,
            },
            "messages": {**sent, "delivered_to_portal": delivered["messages"]},
        }
    finally:
        await stage.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--widget", required=True)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--send-s", type=float, default=10.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
