"""Smoke benchmark: N messages through the custom connector into a real engine.

The engine runs as a subprocess on its embedded default (local Ray, SQLite) with one portal
stood in for by the benchmark sink, which verifies and opens every batch. Messages go out
over concurrent connections, each owning a set of chats and sending them in order, many
messages per webhook. It prints messages/s and webhook-to-portal latency, and fails if
anything was lost, duplicated or reordered.

    python -m bench.smoke --messages 20000 --batch 50 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench.stage import LINE, Stage, check_passed, delivery_check
from engine.security.webhook_signature import hmac_signature, signature_headers

SECRET = "bench-signing-secret-0123456789"
CONNECTOR = {
    "id": "load",
    "channel": "custom",
    "portal": "bench",
    "line": LINE,
    "credentials": {"signing_secret": SECRET},
}


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
) -> None:
    """Send ``total`` messages; each connection owns a set of chats and sends them in order,
    as a channel does (Telegram posts a chat's next update only after the previous one).
    With ``rate`` > 0 the messages are paced to that many per second in total. Each text
    starts with ``lt=<monotonic ns>`` so the sink measures latency from the event alone."""
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
                    "content": {"kind": "text", "text": f"lt={time.monotonic_ns()} message {i}"},
                }
                for i in mine[start : start + batch]
            ]
            body = orjson.dumps({"messages": messages})
            async with session.post(url, data=body, headers=signed(body)) as response:
                if response.status != 200:
                    raise SystemExit(f"engine answered {response.status}: {await response.text()}")

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, lane) for lane in range(connections)))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    stage = Stage(
        ["bench"],
        channels=(),
        channel_actors=args.channel_actors,
        portal_defaults={"linger_ms": args.linger_ms},
        engine_overrides={"connectors": [CONNECTOR]},
    )
    await stage.start()
    try:
        started_ns = time.monotonic_ns()
        await push(
            f"{stage.url}/hooks/custom/load",
            args.messages,
            args.batch,
            args.connections,
            args.chats,
            args.rate,
        )
        acked_s = (time.monotonic_ns() - started_ns) / 1e9
        stats = await stage.wait_delivered(args.messages, timeout_s=300)
    finally:
        await stage.stop()
    delivered_s = ((stats["last_event_ns"] or started_ns) - started_ns) / 1e9
    return {
        "messages": args.messages,
        "webhook_batch": args.batch,
        "connections": args.connections,
        "offered_rate_per_s": args.rate or "max",
        "ingest_messages_per_s": round(args.messages / acked_s),
        "end_to_end_messages_per_s": round(stats["messages"] / delivered_s) if delivered_s else 0,
        "latency_ms": stats["latency_ms"],
        **delivery_check(args.messages, stats),
    }


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
    return 0 if check_passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
