"""A sample portal: receives the engine's batches, checks and opens them, prints the events.

For trying the engine out (``openlines sample-portal``) and as a worked example of the
portal-side module. A real portal stores the events and shows them to its operators.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from typing import Any

import aiohttp
from aiohttp import web

from engine.errors import AuthError
from engine.portal_side import PortalSide


async def fetch_engine_key(engine_url: str, attempts: int = 60) -> str:
    """The engine's Ed25519 public key; waits for the engine to come up."""
    async with aiohttp.ClientSession() as session:
        for _ in range(attempts):
            try:
                async with session.get(f"{engine_url}/api/v1/engine-key") as response:
                    return str((await response.json())["public_key"])
            except aiohttp.ClientError:
                await asyncio.sleep(1)
    raise SystemExit(f"engine at {engine_url} did not answer")


def event_line(event: dict[str, Any]) -> str:
    """One printed line per event: a message's content, or an engine event's data.

    Customers write in every language and with emoji: their text is printed as it is, not
    as ``\\u`` escapes, since this output is read by people."""
    data = event["data"]
    summary = data.get("content") or {k: v for k, v in data.items() if k != "raw"}
    return (
        f"#{event['seq']} {event['type']} dialog={event['dialog']['id']} "
        f"operator={event['dialog']['operator_id']}: {json.dumps(summary, ensure_ascii=False)}"
    )


def make_app(side: PortalSide) -> web.Application:
    seen_batches: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            batch = side.open_delivery(request.headers, body)
        except AuthError as exc:
            print(f"refused a delivery: {exc}", flush=True)
            return web.Response(status=401, text=str(exc))
        if batch["batch_id"] in seen_batches:
            return web.Response(status=204)
        seen_batches.add(batch["batch_id"])
        for event in batch["events"]:
            print(event_line(event), flush=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/openlines", receive)
    return app


def run_sample_portal(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    engine_key = asyncio.run(fetch_engine_key(args.engine))
    side = PortalSide.from_b64(args.portal_id, args.private_key, engine_key, args.license_key)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A terminal that cannot show a customer's script gets escapes for those characters;
        # an exception there would answer the delivery 500 and have it retried forever.
        sys.stdout.reconfigure(errors="backslashreplace")
    print(f"sample portal {args.portal_id} on http://{host}:{port}/openlines", flush=True)
    web.run_app(
        make_app(side), host=host or "127.0.0.1", port=int(port), print=None, access_log=None
    )
    return 0
