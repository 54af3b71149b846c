"""The careful single-process relay: what one asyncio process does with the same work.

    python -m bench.careful --endpoint URL --portal-id ID --portal-key B64 --data-dir DIR

The baseline the engine's ingest path is measured against beside the naive one
(``bench.naive``). It does, for a Telegram webhook, what the engine does, with the fewest
moves and no Ray:

1. aiohttp on 127.0.0.1 takes ``POST /hooks/telegram/{connector}``; the secret-token check,
   parsing and validation are the engine's own ``TelegramChannel``, the stored record the
   engine's own ``outbox_record``;
2. group commit into SQLite (WAL, ``synchronous=FULL``): the webhooks waiting when the
   previous commit ends are written in the next transaction, with no wait before it; only
   then 200. A provider's retry of a stored update is answered 200 and not stored again;
3. a delivery loop takes committed messages in order, lingers ``--linger-ms`` when it
   cannot fill a batch, seals and signs the batch with the engine's own ``seal_and_sign``,
   POSTs it, sends the same batch again until the portal takes it, then deletes its rows.

Durable before the ack, at least once with stable ids, in order (one batch in flight;
``seq`` is the row id, never reused). Uses uvloop, as Ray does for the channel actors'
loops. Prints ``ready <port> <engine public key>`` once listening; stops on SIGTERM.
What it leaves out, being a baseline that runs for minutes: pruning the ids it has seen,
dead letters, retry limits, more than one portal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from channels.base import RawRequest
from channels.registry import build_channel
from engine.errors import EngineError
from engine.ingest import outbox_record
from engine.models import Route
from engine.security.keys import EngineSigningKey, load_or_create_signing_key
from engine.security.sealing import seal_and_sign, x25519_public_from_b64
from engine.store.records import OutboxRecord

HOST = "127.0.0.1"
SIGNING_KEY_FILE = "engine-signing-key.pem"
REPO_ROOT = Path(__file__).resolve().parents[1]
RETRY_PAUSE_S = 0.2
DELIVERY_TIMEOUT_S = 10.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    received_at REAL NOT NULL, dialog BLOB NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen (dedup_key TEXT PRIMARY KEY) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """A committed message waiting for delivery."""

    seq: int
    event_id: str
    kind: str
    received_at: float
    dialog: bytes
    payload: bytes


def dialog_json(record: OutboxRecord) -> bytes:
    """No router: a dialog is the chat, waiting with no operator (as in ``bench.naive``)."""
    talk = record.conversation
    return orjson.dumps(
        {
            "id": f"careful:{talk.connector_id}:{talk.dialog_key}",
            "line_id": talk.line_id,
            "connector_id": talk.connector_id,
            "channel": talk.channel,
            "customer_id": talk.customer_id,
            "state": "waiting",
            "operator_id": None,
            "offered_to": [],
        }
    )


class Journal:
    """The relay's SQLite file: one transaction at a time (``Relay._commit_groups``).

    A transaction is written on the event loop (in-memory work: a few microseconds a row)
    and committed on a thread, so the loop never waits for the disk and the thread needs
    the GIL once per group rather than once per statement.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def write(self, records: list[OutboxRecord], forget_through: int) -> list[Stored | None]:
        """Begin a transaction: delivered rows out, ``records`` in; None for a record
        stored before (a provider's retry). ``commit`` or ``rollback`` next."""
        stored: list[Stored | None] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM messages WHERE seq <= ?", (forget_through,))
            for record in records:
                seen = self._db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?)", (record.dedup_key,)
                )
                if seen.rowcount == 0:
                    stored.append(None)
                    continue
                row = (
                    record.event_id,
                    record.kind,
                    record.received_at,
                    dialog_json(record),
                    record.payload,
                )
                cursor = self._db.execute(
                    "INSERT INTO messages (event_id, kind, received_at, dialog, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    row,
                )
                assert cursor.lastrowid is not None
                stored.append(Stored(cursor.lastrowid, *row))
        except BaseException:
            self.rollback()
            raise
        return stored

    def commit(self) -> None:
        """Durable once this returns (the fsync of ``synchronous=FULL``)."""
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def undelivered(self) -> list[Stored]:
        rows = self._db.execute(
            "SELECT seq, event_id, kind, received_at, dialog, payload FROM messages ORDER BY seq"
        )
        return [Stored(*row) for row in rows]

    def close(self) -> None:
        self._db.close()


class Relay:
    def __init__(
        self,
        journal: Journal,
        portal_id: str,
        endpoint: str,
        portal_key_b64: str,
        engine_key_path: Path,
        secret_token: str,
        batch_max: int,
        linger_ms: float,
    ) -> None:
        self._journal = journal
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._portal_id = portal_id
        self._endpoint = endpoint
        self._portal_key = x25519_public_from_b64(portal_key_b64)
        self._engine_key = load_or_create_signing_key(engine_key_path)
        route = Route(
            portal_id=portal_id, line_id="support", connector_id="careful", channel="telegram"
        )
        credentials: dict[str, object] = {"bot_token": "0:careful", "secret_token": secret_token}
        self._channel = build_channel(route, credentials)
        self._batch_max = batch_max
        self._linger_s = linger_ms / 1000
        self._waiting: list[tuple[list[OutboxRecord], asyncio.Future[list[Stored | None]]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._pending: deque[Stored] = deque(journal.undelivered())
        self._wake = asyncio.Event()
        self._delivered_through = 0
        """The last seq the portal took; its rows go with the next transaction."""
        self._forgotten_through = 0

    async def _on_thread(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    # -- the acknowledgement path --------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        raw = RawRequest(
            method=request.method,
            path=request.path_qs,
            headers=request.headers,
            query=request.query,
            body=await request.read(),
        )
        try:
            self._channel.verify(raw)
            parsed = self._channel.parse(raw, time.time())
        except EngineError as error:
            return web.Response(status=error.http_status, text=f"{error.reason}: {error}")
        stored: list[Stored | None] = []
        if parsed.messages:
            try:
                stored = await self._append([outbox_record(m) for m in parsed.messages])
            except sqlite3.Error as error:  # nothing of the group was stored: retry
                return web.Response(status=503, text=f"not stored, retry: {error}")
        reply = self._channel.acknowledge(parsed, [item is not None for item in stored])
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    async def _append(self, records: list[OutboxRecord]) -> list[Stored | None]:
        future: asyncio.Future[list[Stored | None]] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, future))
        self._start_committer()
        return await future

    def _start_committer(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups())

    async def _commit_groups(self) -> None:
        """Commit whatever waits, as soon as the previous commit is done."""
        while self._waiting or self._forgotten_through < self._delivered_through:
            group, self._waiting = self._waiting, []
            flat = [record for records, _ in group for record in records]
            forget = self._delivered_through
            try:
                stored = self._journal.write(flat, forget)
                await self._on_thread(self._journal.commit)
            except sqlite3.Error as error:  # the whole group was rolled back
                await self._on_thread(self._journal.rollback)
                for _, future in group:
                    future.set_exception(error)
                continue
            self._forgotten_through = forget
            start = 0
            for records, future in group:
                future.set_result(stored[start : start + len(records)])
                start += len(records)
            self._pending.extend(item for item in stored if item is not None)
            self._wake.set()

    # -- delivery ----------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                while not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                if len(self._pending) < self._batch_max and self._linger_s > 0:
                    await asyncio.sleep(self._linger_s)
                count = min(len(self._pending), self._batch_max)
                batch = [self._pending[n] for n in range(count)]
                await self._deliver(session, batch)
                for _ in range(count):
                    self._pending.popleft()
                self._delivered_through = batch[-1].seq
                self._start_committer()  # deletes them with the next group, or alone

    async def _deliver(self, session: aiohttp.ClientSession, batch: list[Stored]) -> None:
        """POST the batch until the portal takes it; the same batch id every attempt."""
        batch_id = f"careful_{batch[0].seq}-{batch[-1].seq}"
        attempt = 0
        while True:
            attempt += 1
            headers, body = self._sealed(batch_id, batch, attempt)
            try:
                async with session.post(self._endpoint, data=body, headers=headers) as answer:
                    if 200 <= answer.status < 300:
                        return
                    problem = f"portal answered {answer.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = f"portal unreachable: {error!r}"
            print(f"careful: batch {batch_id} attempt {attempt}: {problem}", file=sys.stderr)
            await asyncio.sleep(RETRY_PAUSE_S)

    def _sealed(self, batch_id: str, batch: list[Stored], attempt: int) -> tuple[Any, bytes]:
        plaintext = orjson.dumps(
            {
                "portal_id": self._portal_id,
                "batch_id": batch_id,
                "stream": 0,
                "attempt": attempt,
                "sent_at": time.time(),
                "events": [
                    {
                        "id": item.event_id,
                        "seq": item.seq,
                        "type": item.kind,
                        "best_effort": False,
                        "occurred_at": item.received_at,
                        "dialog": orjson.Fragment(item.dialog),
                        "data": orjson.Fragment(item.payload),
                    }
                    for item in batch
                ],
            }
        )
        return seal_and_sign(
            self._portal_id,
            batch_id,
            plaintext,
            self._portal_key,
            self._engine_key,
            int(time.time()),
        )

    async def close(self) -> None:
        if self._committer is not None:
            await self._committer
        await self._on_thread(self._journal.close)
        self._thread.shutdown(wait=True)


async def serve(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / SIGNING_KEY_FILE
    public_key = EngineSigningKey.load_or_create(key_path).public_key_b64
    relay = Relay(
        Journal(data_dir / "careful.sqlite3"),
        args.portal_id,
        args.endpoint,
        args.portal_key,
        key_path,
        args.secret_token,
        args.batch_max,
        args.linger_ms,
    )
    app = web.Application()
    app.router.add_post("/hooks/telegram/{connector_id}", relay.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, args.port, backlog=2048).start()
    delivery = asyncio.create_task(relay.deliver_forever())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {runner.addresses[0][1]} {public_key}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        await relay.close()


class CarefulProcess:
    """``python -m bench.careful`` as a subprocess, for an orchestrator."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, engine_key: str) -> None:
        self.process = process
        self.port = port
        self.engine_key = engine_key
        """What the portal verifies signatures with (``SinkClient.set_engine_key``)."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    async def start(
        cls,
        endpoint: str,
        portal_id: str,
        portal_key_b64: str,
        data_dir: Path,
        secret_token: str,
        timeout_s: float = 30.0,
    ) -> CarefulProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.careful",
            "--endpoint",
            endpoint,
            "--portal-id",
            portal_id,
            # One argument: a base64url key may start with "-", which argparse would take
            # for an option.
            f"--portal-key={portal_key_b64}",
            "--data-dir",
            str(data_dir),
            "--secret-token",
            secret_token,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
        if not line.startswith(b"ready "):
            process.kill()
            await process.wait()
            raise RuntimeError(f"bench.careful did not start: {line!r}")
        _, port, key = line.decode().split()
        return cls(process, int(port), key)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.careful", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--endpoint", required=True, help="the portal's delivery URL")
    parser.add_argument("--portal-id", required=True)
    parser.add_argument("--portal-key", required=True, help="the portal's X25519 public key")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--secret-token", required=True, help="X-Telegram-Bot-Api-Secret-Token")
    parser.add_argument("--batch-max", type=int, default=500, help="events per batch")
    parser.add_argument("--linger-ms", type=float, default=5.0, help="wait to fill a batch")
    args = parser.parse_args(argv)
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
