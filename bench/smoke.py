"""Smoke benchmark: N messages through the custom connector into a real engine.

Starts the engine as a subprocess on its embedded default (local Ray, SQLite) with a
temporary data folder, runs a loopback portal that verifies and opens every batch, pushes
N messages over concurrent connections, and prints messages/s and webhook-to-portal latency
percentiles. It fails if anything was lost, duplicated or reordered.

    python -m bench.smoke --messages 20000 --batch 50 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from engine.portal_side import PortalSide
from engine.security.keys import generate_portal_keypair
from engine.security.webhook_signature import hmac_signature, signature_headers

SECRET = "bench-signing-secret-0123456789"
LICENSE = "bench-license-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortalSink:
    """Receives batches, opens them, records arrival time per event."""

    def __init__(self, private_key: str) -> None:
        self.private_key = private_key
        self.side: PortalSide | None = None
        self.arrivals: dict[str, float] = {}
        self.order: dict[str, list[int]] = {}
        self.duplicates = 0
        self.done = asyncio.Event()
        self.expected = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert self.side is not None
        batch = self.side.open_delivery(request.headers, body)
        now = time.perf_counter()
        for event in batch["events"]:
            data = event["data"]
            if data["channel_event_id"] in self.arrivals:
                self.duplicates += 1
                continue
            self.arrivals[data["channel_event_id"]] = now
            self.order.setdefault(data["dialog_key"], []).append(data["order_key"])
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.Response(status=204)


async def wait_ready(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise SystemExit("engine exited before it was ready")
        if b"openlines: ready" in line:
            return


async def drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def signed(body: bytes) -> dict[str, str]:
    message_id = "msg_" + secrets.token_hex(8)
    timestamp = int(time.time())
    headers = signature_headers(
        message_id, timestamp, hmac_signature(SECRET.encode(), message_id, timestamp, body)
    )
    headers["Content-Type"] = "application/json"
    return headers


async def push(
    url: str, total: int, batch: int, connections: int, chats: int, rate: float = 0.0
) -> dict[str, float]:
    """Send ``total`` messages; each connection owns a set of chats and sends them in order,
    as a channel does (Telegram posts a chat's next update only after the previous one).
    With ``rate`` > 0 the messages are paced to that many per second in total."""
    sent_at: dict[str, float] = {}
    clock_start = time.perf_counter()

    async def worker(session: aiohttp.ClientSession, lane: int) -> None:
        mine = [i for i in range(total) if (i % chats) % connections == lane]
        for start in range(0, len(mine), batch):
            if rate > 0:
                due = clock_start + mine[start] / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            messages = [
                {
                    "event_id": f"e{i}",
                    "chat_id": f"chat-{i % chats}",
                    "sequence": i,
                    "sent_at": time.time(),
                    "customer": {"id": f"cust-{i % chats}"},
                    "content": {"kind": "text", "text": f"message {i}"},
                }
                for i in mine[start : start + batch]
            ]
            body = orjson.dumps({"messages": messages})
            began = time.perf_counter()
            async with session.post(url, data=body, headers=signed(body)) as response:
                if response.status != 200:
                    raise SystemExit(f"engine answered {response.status}: {await response.text()}")
            for message in messages:
                sent_at[message["event_id"]] = began

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, lane) for lane in range(connections)))
    return sent_at


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    private, public = generate_portal_keypair()
    sink = PortalSink(private)
    sink.expected = args.messages
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/openlines", sink.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    portal_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", portal_port).start()

    workdir = Path(tempfile.mkdtemp(prefix="openlines-bench-"))
    engine_port = free_port()
    (workdir / "rules").mkdir()
    config = {
        "port": engine_port,
        "data_dir": str(workdir / "data"),
        "rules_dir": str(workdir / "rules"),
        "channel_actors": args.channel_actors,
        "portals": [
            {
                "id": "bench",
                "endpoint": f"http://127.0.0.1:{portal_port}/openlines",
                "public_key": public,
                "license_key": LICENSE,
                "linger_ms": args.linger_ms,
                "lines": [{"id": "support"}],
            }
        ],
        "connectors": [
            {
                "id": "load",
                "channel": "custom",
                "portal": "bench",
                "line": "support",
                "credentials": {"signing_secret": SECRET},
            }
        ],
    }
    (workdir / "engine.yaml").write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli",
        "run",
        "--config",
        str(workdir / "engine.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.wait_for(wait_ready(process), 120)
        assert process.stdout is not None
        drainer = asyncio.create_task(drain(process.stdout))
        base = f"http://127.0.0.1:{engine_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/v1/engine-key") as response:
                engine_key = (await response.json())["public_key"]
        sink.side = PortalSide.from_b64("bench", private, engine_key, LICENSE)

        started = time.perf_counter()
        sent_at = await push(
            f"{base}/hooks/custom/load",
            args.messages,
            args.batch,
            args.connections,
            args.chats,
            args.rate,
        )
        acked = time.perf_counter()
        await asyncio.wait_for(sink.done.wait(), 300)
        finished = time.perf_counter()
    finally:
        process.terminate()
        await process.wait()
        await runner.cleanup()

    latencies_ms = [(sink.arrivals[k] - sent_at[k]) * 1000 for k in sent_at]
    reordered = sum(1 for keys in sink.order.values() if keys != sorted(keys))
    result = {
        "messages": args.messages,
        "webhook_batch": args.batch,
        "connections": args.connections,
        "offered_rate_per_s": args.rate or "max",
        "ingest_messages_per_s": round(args.messages / (acked - started)),
        "end_to_end_messages_per_s": round(args.messages / (finished - started)),
        "latency_ms": {
            "p50": round(percentile(latencies_ms, 0.50), 1),
            "p95": round(percentile(latencies_ms, 0.95), 1),
            "p99": round(percentile(latencies_ms, 0.99), 1),
            "max": round(max(latencies_ms), 1),
            "mean": round(statistics.fmean(latencies_ms), 1),
        },
        "lost": args.messages - len(sink.arrivals),
        "duplicates": sink.duplicates,
        "dialogs_out_of_order": reordered,
    }
    drainer.cancel()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50, help="messages per webhook")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--channel-actors", type=int, default=2)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible"
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["dialogs_out_of_order"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
