"""The delivery floor: one process sealing, signing and POSTing single-event batches to the
bench's portal sink as fast as it can, round-robin over many portals.

When thousands of quiet portals make every message a batch of one, the cost per delivery is
what bounds the engine; this is that cost with nothing else around it (no storage, no
routing, no Ray), measured in the same run and against the same sink as the engine, so the
engine's delivery rate with 10,000 portals is reported as a share of it (``ratio_to_floor``).

It uses the engine's own code for what a delivery is: ``EngineSealer`` (HPKE to the
portal's key, Ed25519 signature over the sealed bytes) and ``HttpTransport`` (one shared
``aiohttp`` session), the engine's signing key from the stage's data folder, and a realistic
message event (the universal message of a Telegram text, its dialog, seq and envelope).

python -m bench.delivery_floor --sink URL --keys public-keys.json --engine-key key.pem \
    --seconds 10 --concurrency 100
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from engine.clock import SystemClock
from engine.config import PortalConfig
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.ids import inbound_event_id
from engine.models import Customer, InboundMessage, Route, TextContent

LINE = "support"


def message_event(portal_id: str, batch_id: str, number: int, now_s: float) -> bytes:
    """One ``message.received`` event as the engine delivers it (the batch's only event)."""
    chat = str(100_000 + number % 5000)
    message = InboundMessage(
        id=inbound_event_id(f"{portal_id}-telegram", str(number)),
        route=Route(
            portal_id=portal_id,
            line_id=LINE,
            connector_id=f"{portal_id}-telegram",
            channel="telegram",
        ),
        dialog_key=chat,
        customer=Customer(channel_user_id=chat, name="Мария Иванова"),
        content=TextContent(text=f"Здравствуйте! Вопрос по заказу №{number}"),
        channel_message_id=str(number),
        channel_event_id=str(number),
        order_key=number,
        sent_at=now_s,
        received_at=now_s,
    )
    dialog = {
        "id": f"dlg_{portal_id}_{chat}",
        "line_id": LINE,
        "connector_id": f"{portal_id}-telegram",
        "channel": "telegram",
        "customer_id": chat,
        "state": "waiting",
        "operator_id": None,
        "offered_to": [],
    }
    event = {
        "id": message.id,
        "seq": number + 1,
        "type": "message.received",
        "best_effort": False,
        "occurred_at": now_s,
        "dialog": dialog,
        "data": orjson.Fragment(message.model_dump_json()),
    }
    return orjson.dumps(
        {
            "portal_id": portal_id,
            "batch_id": batch_id,
            "stream": 0,
            "attempt": 1,
            "sent_at": now_s,
            "events": [event],
        }
    )


async def run(
    sink_url: str,
    public_keys: dict[str, str],
    engine_key: Ed25519PrivateKey,
    seconds: float,
    concurrency: int,
) -> dict[str, float | int]:
    portals = [
        PortalConfig(
            id=portal_id,
            endpoint=f"{sink_url}/p/{portal_id}",
            public_key=public_key,
            license_key=f"floor-license-{portal_id}-0000",
            lines=({"id": LINE},),  # type: ignore[arg-type]
        )
        for portal_id, public_key in sorted(public_keys.items())
    ]
    sealer = EngineSealer(engine_key)
    clock = SystemClock()
    numbers = itertools.count()
    delivered = failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        transport = HttpTransport(session, clock)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal delivered, failed
            while time.perf_counter() < deadline:
                number = next(numbers)
                portal = portals[number % len(portals)]
                now_s = clock.now()
                batch_id = f"bat_floor_{portal.id}_{number}"
                plaintext = message_event(portal.id, batch_id, number // len(portals), now_s)
                headers, body = sealer.seal(portal, batch_id, plaintext, int(now_s))
                outcome = await transport.post(portal.endpoint, headers, body, 10.0)
                if outcome.accepted:
                    delivered += 1
                else:
                    failed += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "delivered": delivered,
        "failed": failed,
        "seconds": round(elapsed, 3),
        "delivered_per_s": round(delivered / elapsed, 1),
        "portals": len(portals),
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_floor", description=__doc__)
    parser.add_argument("--sink", required=True, help="the sink's base URL")
    parser.add_argument("--keys", required=True, help="JSON: portal id -> X25519 public key")
    parser.add_argument("--engine-key", required=True, help="the engine's Ed25519 PEM")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    key = load_pem_private_key(Path(args.engine_key).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        print("the engine key is not an Ed25519 key", file=sys.stderr)
        return 2
    public_keys = json.loads(Path(args.keys).read_text(encoding="utf-8"))
    result = asyncio.run(run(args.sink, public_keys, key, args.seconds, args.concurrency))
    print(json.dumps(result))
    return 0 if result["delivered"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
