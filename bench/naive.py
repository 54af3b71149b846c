"""The baseline written the obvious way: one Ray call and one SQLite commit per message.

It does what the engine does for a Telegram webhook, with none of its batching:

1. ``NaiveIngest`` (a Ray actor serving aiohttp on its own port) checks the secret-token
   header, parses and normalizes the update with the same ``TelegramChannel`` the engine uses,
   and awaits ``NaivePortal.store_and_forward`` once per message;
2. ``NaivePortal`` inserts the message in SQLite (WAL, ``synchronous=FULL``, one transaction
   per message), then seals and signs it alone (``seal_and_sign``, one event per batch) and
   POSTs it to the portal;
3. only when that returned does the webhook get 200.

It is honest rather than a strawman: durable before the ack; at least once (a failed POST
fails the webhook, so the channel's retry delivers the stored message again, under the same
event id, seq and batch id); in order (the portal actor stores and delivers one message at a
time, so seq arrives gap-free and increasing, and a dialog keeps its order because Telegram
sends a chat's next update only after the previous one was acknowledged; updates of one chat
sent concurrently are delivered in arrival order, not ``update_id`` order). Everything is
delivered as long as the portal answers. What it lacks is what the design adds: batching on
every hop, group commit, a linger, and delivery decoupled from the webhook.

From a driver that already ran ``ray.init``::

    handle = await start_naive(port, "http://127.0.0.1:P/p/naive", "naive", public_key, dir)
    ... point the load generator at handle.url + "/hooks/telegram/<anything>" ...
    await stop_naive(handle)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import ray
from aiohttp import web

from channels.base import RawRequest
from channels.registry import build_channel
from engine.errors import EngineError
from engine.models import Route
from engine.security.keys import EngineSigningKey, load_or_create_signing_key
from engine.security.sealing import seal_and_sign, x25519_public_from_b64

NAIVE_SECRET_TOKEN = "naive-bench-secret"
"""The X-Telegram-Bot-Api-Secret-Token the baseline expects unless told otherwise."""
SIGNING_KEY_FILE = "engine-signing-key.pem"
DELIVERY_TIMEOUT_S = 30.0
EVENT_TYPES = {"new": "message.received", "edit": "message.edited", "delete": "message.deleted"}


class DeliveryFailedError(Exception):
    """The portal did not take the message; it stays stored and the webhook is refused."""


@ray.remote(num_cpus=0)
class NaivePortal:
    """Stores each message with its own commit, then delivers it on its own."""

    def __init__(
        self, portal_id: str, endpoint: str, portal_public_key_b64: str, data_dir: str
    ) -> None:
        self._portal_id = portal_id
        self._endpoint = endpoint
        self._portal_key = x25519_public_from_b64(portal_public_key_b64)
        folder = Path(data_dir)
        self._engine_key = load_or_create_signing_key(folder / SIGNING_KEY_FILE)
        self._db = sqlite3.connect(folder / "naive.sqlite3", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY,"
            " event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL, received_at REAL NOT NULL)"
        )
        # One message at a time, in arrival order: what keeps dialogs and seq in order.
        self._turn = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def store_and_forward(self, message_json: bytes) -> None:
        """Durable, then delivered; ``DeliveryFailedError`` when the portal did not take it."""
        async with self._turn:
            message = orjson.loads(message_json)
            seq = self._store(message["id"], message_json, message["received_at"])
            await self._deliver(seq, message, message_json)

    def _store(self, event_id: str, message_json: bytes, received_at: float) -> int:
        """The message's seq; a channel's retry of a stored message gets the seq it had."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages (event_id, payload, received_at) VALUES (?, ?, ?)",
                (event_id, message_json, received_at),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if cursor.rowcount == 1 and cursor.lastrowid is not None:
            return cursor.lastrowid
        row = self._db.execute("SELECT seq FROM messages WHERE event_id = ?", (event_id,))
        seq: int = row.fetchone()[0]
        return seq

    async def _deliver(self, seq: int, message: dict[str, Any], message_json: bytes) -> None:
        batch_id = f"naive_{seq}"
        plaintext = orjson.dumps(
            {
                "portal_id": self._portal_id,
                "batch_id": batch_id,
                "stream": 0,
                "attempt": 1,
                "sent_at": time.time(),
                "events": [
                    {
                        "id": message["id"],
                        "seq": seq,
                        "type": EVENT_TYPES[message["action"]],
                        "best_effort": False,
                        "occurred_at": message["received_at"],
                        "dialog": self._dialog(message),
                        "data": orjson.Fragment(message_json),
                    }
                ],
            }
        )
        now_s = int(time.time())
        headers, body = seal_and_sign(
            self._portal_id, batch_id, plaintext, self._portal_key, self._engine_key, now_s
        )
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.post(self._endpoint, data=body, headers=headers) as answer:
                if not 200 <= answer.status < 300:
                    raise DeliveryFailedError(f"portal answered {answer.status} to {batch_id}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryFailedError(f"portal unreachable for {batch_id}: {error!r}") from None

    def _dialog(self, message: dict[str, Any]) -> dict[str, Any]:
        """No router: a dialog is the chat, and it waits for ever with no operator (the
        engine's view of a dialog on a line without rules, less its ``dialog.*`` events)."""
        route = message["route"]
        return {
            "id": f"naive:{route['connector_id']}:{message['dialog_key']}",
            "line_id": route["line_id"],
            "connector_id": route["connector_id"],
            "channel": route["channel"],
            "customer_id": message["customer"]["channel_user_id"],
            "state": "waiting",
            "operator_id": None,
            "offered_to": [],
        }

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._db.close()


@ray.remote(num_cpus=0, max_concurrency=100_000)  # type: ignore[call-overload]
class NaiveIngest:
    """Telegram webhooks in on ``POST /hooks/telegram/{any}``; one portal call per message."""

    def __init__(self, port: int, portal: Any, portal_id: str, secret_token: str) -> None:
        self._port = port
        self._portal = portal
        route = Route(
            portal_id=portal_id, line_id="support", connector_id="naive", channel="telegram"
        )
        credentials: dict[str, object] = {"bot_token": "0:naive", "secret_token": secret_token}
        self._channel = build_channel(route, credentials)
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_post("/hooks/telegram/{connector_id}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=2048).start()
        return self._port

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        raw = RawRequest(
            method=request.method,
            path=request.path_qs,
            headers={name.lower(): value for name, value in request.headers.items()},
            query=dict(request.query),
            body=body,
        )
        try:
            self._channel.verify(raw)
            parsed = self._channel.parse(raw, time.time())
        except EngineError as error:
            return web.Response(status=error.http_status, text=f"{error.reason}: {error}")
        for message in parsed.messages:
            try:
                await self._portal.store_and_forward.remote(message.model_dump_json().encode())
            except ray.exceptions.RayError as error:  # not delivered: the channel retries
                cause = error.cause if isinstance(error, ray.exceptions.RayTaskError) else error
                return web.Response(status=503, text=f"not delivered, retry: {cause}")
        return web.Response(status=200)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass(frozen=True)
class NaiveHandle:
    ingest: Any
    portal: Any
    port: int
    engine_public_key: str
    """What the portal verifies signatures with (``SinkClient.set_engine_key``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_naive(
    port: int,
    portal_endpoint: str,
    portal_id: str,
    portal_public_key_b64: str,
    data_dir: str | Path,
    secret_token: str = NAIVE_SECRET_TOKEN,
) -> NaiveHandle:
    """Start both actors (Ray must be initialized) and serve webhooks on 127.0.0.1:``port``."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # Created here first so the driver knows the public key; the actor reads the same file.
    signing_key = await asyncio.to_thread(
        EngineSigningKey.load_or_create, folder / SIGNING_KEY_FILE
    )
    portal = NaivePortal.remote(  # type: ignore[attr-defined]
        portal_id, portal_endpoint, portal_public_key_b64, str(folder)
    )
    ingest = NaiveIngest.remote(port, portal, portal_id, secret_token)  # type: ignore[attr-defined]
    await ingest.start.remote()
    return NaiveHandle(ingest, portal, port, signing_key.public_key_b64)


async def stop_naive(handle: NaiveHandle) -> None:
    """Stop taking webhooks, close the database and the actors."""
    await handle.ingest.stop.remote()
    await handle.portal.close.remote()
    ray.kill(handle.ingest)
    ray.kill(handle.portal)
