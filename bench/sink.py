"""The portal side of every benchmark: one process standing in for 1 to 10,000 portals.

    python -m bench.sink --port P --keys FILE

Portal ``i`` receives at ``http://127.0.0.1:P/p/<portal id>``. Every batch is verified and
opened exactly as a portal must (``docs/protocol.md``: Ed25519 signature first, then the
portal-id header, HPKE opening with the portal's own id and the batch id, then the ids inside
the plaintext), with a ``PortalSide`` per portal built on first use. Then, per event:

* **events / duplicates**: an event id seen before for the portal is a duplicate (a redelivery);
  only new events are checked further. Every event counts here, the engine's own
  (``dialog.*``, ``reply.*``) too.
* **messages / message duplicates**: the same, for customers' messages (``message.*``) only:
  what a benchmark compares with the messages the channels had acknowledged, since the
  engine adds events of its own (a new conversation's stream starts with ``dialog.queued``).
* **event types**: new events counted by ``type`` (``dialog.assigned``, ...), so a run can
  tell that the engine did the work its events stand for.
* **order violations**: per (portal, dialog id), ``data.order_key`` (the channel's own order;
  ``data.channel_event_id`` when it is numeric and there is no order key) lower than the
  previous event's counts once; so does a ``dialog.queued`` of a new dialog arriving after
  another event of that dialog (a dialog's stream starts with it). Other engine events carry
  no channel order: ``seq`` orders them.
* **seq problems**: ``seq`` not above the previous one on the same stream (a regression), plus
  holes: per portal, numbers between the lowest and highest seq seen that never arrived. On a
  sequential queue a hole is a jump of more than 1; on a parallel queue streams fill each
  other's numbers, so holes are only meaningful once the run has drained.
* **latency**: a message whose text starts with ``lt=<ns> `` carries ``time.monotonic_ns()`` of
  the load generator (CLOCK_MONOTONIC is system-wide on one machine); receipt minus that goes
  into a log-linear histogram (1/128 relative resolution, constant memory for any run length).
  A message without the stamp counts as ``unstamped``; engine events are not messages.

Control: ``GET /stats[?per_portal=1]``, ``POST /reset``, ``POST /down/{id}[?retry_after_s=N]``,
``POST /up/{id}``, ``POST /keys`` (body ``{"engine_public_key": ..., "portals": {...}}``, either
field optional, or empty to re-read the keys file). ``SinkClient`` drives it from an
orchestrator; ``write_keys`` writes the keys file.

The keys file: ``{"engine_public_key": <base64url or null>, "portals": {id: private_key_b64}}``.
Until the engine key is known, deliveries get 503 (the engine retries them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.histogram import LatencyHistogram
from engine.errors import AuthError, ConfigError
from engine.portal_side import PortalSide
from engine.security.keys import ed25519_public_from_b64
from engine.security.sealing import x25519_private_from_b64

ROOT = Path(__file__).resolve().parents[1]
# PortalSide wants a license key for signing API calls; receiving never uses it.
PLACEHOLDER_LICENSE = "bench-sink-receives-only"
LATENCY_PREFIX = "lt="
MESSAGE_PREFIX = "message."
"""Event types of customers' messages; every other type is the engine's own."""
MAX_BODY_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class PortalTally:
    """What one portal received; seq bookkeeping per stream and over the whole portal."""

    events: int = 0
    messages: int = 0
    last_seq_by_stream: dict[int, int] = field(default_factory=dict)
    seq_low: int | None = None
    seq_high: int = 0
    seq_count: int = 0
    seq_regressions: int = 0

    def note_seq(self, stream: int, seq: int) -> None:
        last = self.last_seq_by_stream.get(stream)
        if last is not None and seq <= last:
            self.seq_regressions += 1
        self.last_seq_by_stream[stream] = seq
        self.seq_count += 1
        if self.seq_low is None or seq < self.seq_low:
            self.seq_low = seq
        if seq > self.seq_high:
            self.seq_high = seq

    @property
    def seq_holes(self) -> int:
        if self.seq_low is None:
            return 0
        return max(0, self.seq_high - self.seq_low + 1 - self.seq_count)


class UnknownPortalError(Exception):
    """A delivery to a portal id the keys file does not list."""


class EngineKeyUnknownError(Exception):
    """A delivery before the engine's public key was given: nothing can be verified yet."""


def _order_key(data: Mapping[str, Any]) -> int | None:
    order = data.get("order_key")
    if isinstance(order, int):
        return order
    event_id = data.get("channel_event_id")
    if isinstance(event_id, str) and event_id.isdigit():
        return int(event_id)
    return None


def _dialog_id(event: Mapping[str, Any], data: Mapping[str, Any]) -> object:
    dialog = event.get("dialog")
    if isinstance(dialog, dict) and dialog.get("id") is not None:
        return dialog["id"]
    return data.get("dialog_key")


def _sent_ns(data: Mapping[str, Any]) -> int | None:
    """The load generator's ``lt=<ns>`` stamp; None when the event carries none."""
    content = data.get("content")
    if not isinstance(content, dict):
        return None
    text = content.get("text")
    if not isinstance(text, str) or not text.startswith(LATENCY_PREFIX):
        return None
    end = text.find(" ", len(LATENCY_PREFIX))
    try:
        return int(text[len(LATENCY_PREFIX) : end if end >= 0 else None])
    except ValueError:
        return None


class Sink:
    """Keys, opening, and the tallies of everything received (no HTTP here)."""

    def __init__(
        self, portals: Mapping[str, str], engine_key: str | None, keys_path: Path | None = None
    ) -> None:
        self.keys_path = keys_path
        self._private_keys: dict[str, str] = {}
        self._engine_key: Ed25519PublicKey | None = None
        self._sides: dict[str, PortalSide] = {}
        self.down: dict[str, int | None] = {}
        self.watched: frozenset[str] = frozenset()
        """Portals whose latency is also kept apart (``watched_latency_ms``)."""
        self.apply_keys({"engine_public_key": engine_key, "portals": dict(portals)})
        self.reset()

    # -- keys ------------------------------------------------------------------------------

    def apply_keys(self, document: Mapping[str, Any]) -> None:
        """Take ``engine_public_key`` and/or ``portals`` from a keys document, whole or not at all.

        ``ConfigError`` when the engine key is not an Ed25519 public key or the portals are not
        a map of id to key text; portal keys themselves are decoded on first use.
        """
        engine_key = self._engine_key
        if "engine_public_key" in document:
            text = document["engine_public_key"]
            engine_key = None if text is None else ed25519_public_from_b64(str(text))
        portals = self._private_keys
        if "portals" in document:
            portals = document["portals"]
            if not isinstance(portals, dict) or not all(
                isinstance(key, str) for key in portals.values()
            ):
                raise ConfigError("portals: expected an object of portal id to private key")
        self._engine_key, self._private_keys = engine_key, dict(portals)
        self._sides.clear()

    def reload_keys(self) -> None:
        """Re-read the keys file (``ConfigError`` if there is none or it does not parse)."""
        if self.keys_path is None:
            raise ConfigError("no keys file to reload; send the keys instead")
        try:
            document = orjson.loads(self.keys_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise ConfigError(f"{self.keys_path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{self.keys_path}: expected a JSON object")
        self.apply_keys(document)

    def _side(self, portal_id: str) -> PortalSide:
        side = self._sides.get(portal_id)
        if side is None:
            private_key = self._private_keys.get(portal_id)
            if private_key is None:
                raise UnknownPortalError(portal_id)
            if self._engine_key is None:
                raise EngineKeyUnknownError(portal_id)
            side = PortalSide(
                portal_id,
                x25519_private_from_b64(private_key),
                self._engine_key,
                PLACEHOLDER_LICENSE,
            )
            self._sides[portal_id] = side
        return side

    def open(self, portal_id: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """``PortalSide.open_delivery``, parsing the plaintext with orjson (twice as fast)."""
        return self._side(portal_id).open_delivery(headers, body, loads=orjson.loads)

    # -- tallies ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything received; keys and down portals stay."""
        self.tallies: dict[str, PortalTally] = {}
        # hash((portal, event id)) rather than the strings: less than half the memory at
        # 10**6 events, and a 64-bit collision among a million ids has odds of about 3e-8.
        self._seen: set[int] = set()
        self._last_order: dict[tuple[str, object], int] = {}
        self._dialogs: set[int] = set()
        """hash((portal, dialog id)) of every dialog an event was seen of."""
        self.latency = LatencyHistogram()
        self.watched_latency = LatencyHistogram()
        self.events = self.duplicates = self.order_violations = self.batches = 0
        self.messages = self.message_duplicates = 0
        self.event_types: dict[str, int] = {}
        self.unstamped = self.negative_latency = 0
        self.refused: dict[str, int] = {"down": 0, "unknown_portal": 0, "no_engine_key": 0}
        self.rejected = 0
        self.first_event_ns: int | None = None
        self.last_event_ns: int | None = None

    def record(self, portal_id: str, batch: Mapping[str, Any], received_ns: int) -> None:
        tally = self.tallies.get(portal_id)
        if tally is None:
            tally = self.tallies[portal_id] = PortalTally()
        stream = batch.get("stream") or 0
        new = new_messages = 0
        for event in batch.get("events", ()):
            kind = event.get("type")
            is_message = isinstance(kind, str) and kind.startswith(MESSAGE_PREFIX)
            key = hash((portal_id, event.get("id")))
            if key in self._seen:
                self.duplicates += 1
                if is_message:
                    self.message_duplicates += 1
                continue
            self._seen.add(key)
            new += 1
            type_name = kind if isinstance(kind, str) else "?"
            self.event_types[type_name] = self.event_types.get(type_name, 0) + 1
            data = event.get("data")
            if not isinstance(data, dict):
                data = {}
            self._check_order(portal_id, event, data)
            seq = event.get("seq")
            if isinstance(seq, int):
                tally.note_seq(stream, seq)
            if is_message:
                new_messages += 1
                self._note_latency(data, received_ns, portal_id in self.watched)
        self.batches += 1
        if new:
            tally.events += new
            tally.messages += new_messages
            self.events += new
            self.messages += new_messages
            if self.first_event_ns is None:
                self.first_event_ns = received_ns
            self.last_event_ns = received_ns

    def _check_order(
        self, portal_id: str, event: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        dialog = (portal_id, _dialog_id(event, data))
        known = hash(dialog)
        if event.get("type") == "dialog.queued" and data.get("reason") == "new":
            if known in self._dialogs:
                self.order_violations += 1  # the stream of a new dialog starts with it
        self._dialogs.add(known)
        order = _order_key(data)
        if order is None:
            return  # engine events (dialog.*, reply.*) carry no channel order
        last = self._last_order.get(dialog)
        if last is not None and order < last:
            self.order_violations += 1
        self._last_order[dialog] = order

    def _note_latency(self, data: Mapping[str, Any], received_ns: int, watched: bool) -> None:
        sent_ns = _sent_ns(data)
        if sent_ns is None:
            self.unstamped += 1
        elif sent_ns > received_ns:
            self.negative_latency += 1
        else:
            self.latency.add((received_ns - sent_ns) // 1000)
            if watched:
                self.watched_latency.add((received_ns - sent_ns) // 1000)

    def stats(self, per_portal: bool = False) -> dict[str, Any]:
        regressions = sum(t.seq_regressions for t in self.tallies.values())
        holes = sum(t.seq_holes for t in self.tallies.values())
        result: dict[str, Any] = {
            "events": self.events,
            "duplicates": self.duplicates,
            "messages": self.messages,
            "message_duplicates": self.message_duplicates,
            "event_types": dict(self.event_types),
            "order_violations": self.order_violations,
            "seq_problems": regressions + holes,
            "seq_regressions": regressions,
            "seq_holes": holes,
            "batches": self.batches,
            "portals_seen": len(self.tallies),
            "rejected": self.rejected,
            "refused": dict(self.refused),
            "latency_ms": self.latency.summary_ms(),
            "watched_latency_ms": self.watched_latency.summary_ms(),
            "unstamped": self.unstamped,
            "negative_latency": self.negative_latency,
            "first_event_ns": self.first_event_ns,
            "last_event_ns": self.last_event_ns,
            "now_ns": time.monotonic_ns(),
        }
        if per_portal:
            result["per_portal"] = {pid: t.events for pid, t in self.tallies.items()}
            result["per_portal_messages"] = {pid: t.messages for pid, t in self.tallies.items()}
        return result


# -- HTTP ------------------------------------------------------------------------------------

SINK = web.AppKey("sink", Sink)


def write_keys(
    path: str | os.PathLike[str], engine_key: str | None, portals: dict[str, str]
) -> None:
    """Write the keys file atomically (a sink reloading it never reads half a file)."""
    target = Path(path)
    temp = target.with_name(target.name + ".tmp")
    temp.write_bytes(orjson.dumps({"engine_public_key": engine_key, "portals": portals}))
    os.replace(temp, target)


async def _receive(request: web.Request) -> web.Response:
    sink = request.app[SINK]
    portal_id = request.match_info["portal_id"]
    if portal_id in sink.down:
        sink.refused["down"] += 1
        retry_after = sink.down[portal_id]
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return web.Response(status=503, text="portal down", headers=headers)
    body = await request.read()
    received_ns = time.monotonic_ns()
    try:
        batch = sink.open(portal_id, request.headers, body)
    except UnknownPortalError:
        sink.refused["unknown_portal"] += 1
        return web.Response(status=404, text=f"unknown portal {portal_id!r}")
    except EngineKeyUnknownError:
        sink.refused["no_engine_key"] += 1
        return web.Response(
            status=503, text="engine key not known yet", headers={"Retry-After": "1"}
        )
    except (AuthError, ConfigError) as error:
        sink.rejected += 1
        return web.Response(status=401, text=str(error))
    sink.record(portal_id, batch, received_ns)
    return web.Response(status=204)


async def _stats(request: web.Request) -> web.Response:
    per_portal = request.query.get("per_portal", "") in ("1", "true", "yes")
    body = orjson.dumps(request.app[SINK].stats(per_portal))
    return web.Response(body=body, content_type="application/json")


async def _reset(request: web.Request) -> web.Response:
    request.app[SINK].reset()
    return web.Response(status=204)


async def _watch(request: web.Request) -> web.Response:
    """Body: a JSON list of portal ids whose latency is also reported apart."""
    portals = orjson.loads(await request.read())
    if not isinstance(portals, list) or not all(isinstance(p, str) for p in portals):
        return web.Response(status=400, text="expected a JSON list of portal ids")
    request.app[SINK].watched = frozenset(portals)
    return web.Response(status=204)


async def _down(request: web.Request) -> web.Response:
    raw = request.query.get("retry_after_s")
    if raw is not None and not raw.isdigit():
        return web.Response(status=400, text="retry_after_s: a whole number of seconds")
    request.app[SINK].down[request.match_info["portal_id"]] = None if raw is None else int(raw)
    return web.Response(status=204)


async def _up(request: web.Request) -> web.Response:
    request.app[SINK].down.pop(request.match_info["portal_id"], None)
    return web.Response(status=204)


async def _keys(request: web.Request) -> web.Response:
    sink = request.app[SINK]
    body = await request.read()
    try:
        if not body.strip():
            sink.reload_keys()
            return web.Response(status=204)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return web.Response(status=400, text=f"keys not applied: {error}")
        if not isinstance(document, dict):
            return web.Response(status=400, text="keys not applied: expected a JSON object")
        sink.apply_keys(document)
    except ConfigError as error:
        return web.Response(status=400, text=f"keys not applied: {error}")
    return web.Response(status=204)


def make_app(
    keys: Mapping[str, str], engine_key: str | None, keys_path: Path | None = None
) -> web.Application:
    """The sink's application; ``keys`` maps portal id to its X25519 private key (base64url)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SINK] = Sink(keys, engine_key, keys_path)
    app.router.add_post("/p/{portal_id}", _receive)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/reset", _reset)
    app.router.add_post("/down/{portal_id}", _down)
    app.router.add_post("/up/{portal_id}", _up)
    app.router.add_post("/keys", _keys)
    app.router.add_post("/watch", _watch)
    return app


async def serve(port: int, keys_path: Path) -> None:
    app = make_app({}, None, keys_path)
    app[SINK].reload_keys()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    bound = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# -- the orchestrator's handle -----------------------------------------------------------------


class SinkClient:
    """Starts ``python -m bench.sink`` as a subprocess and drives it over HTTP."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self._session: aiohttp.ClientSession | None = None
        self._stdout_drain: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, portal_id: str) -> str:
        """The delivery URL to configure for ``portal_id`` in the engine."""
        return f"{self.base_url}/p/{portal_id}"

    async def start(
        self, port: int, keys_path: str | os.PathLike[str], timeout_s: float = 30.0
    ) -> None:
        """Start the sink on ``port`` (0: a free one, read back from its ready line)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sink",
            "--port",
            str(port),
            "--keys",
            str(keys_path),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        try:
            self.port = await asyncio.wait_for(self._wait_ready(self.process.stdout), timeout_s)
        except BaseException:
            await self.stop()
            raise
        self._stdout_drain = asyncio.create_task(self._drain(self.process.stdout))
        self._session = aiohttp.ClientSession(raise_for_status=True)

    @staticmethod
    async def _wait_ready(stdout: asyncio.StreamReader) -> int:
        """The port from the sink's ``ready <port>`` line."""
        while True:
            line = await stdout.readline()
            if not line:
                raise RuntimeError("bench.sink exited before it was ready (see its stderr)")
            if line.startswith(b"ready "):
                return int(line.split()[1])

    @staticmethod
    async def _drain(stdout: asyncio.StreamReader) -> None:
        while await stdout.readline():
            pass

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("SinkClient.start() first")
        return self._session

    async def _post(self, path: str, body: bytes = b"") -> None:
        async with self._http().post(self.base_url + path, data=body):
            pass

    async def stats(self, per_portal: bool = False) -> dict[str, Any]:
        query = "?per_portal=1" if per_portal else ""
        async with self._http().get(f"{self.base_url}/stats{query}") as response:
            result: dict[str, Any] = orjson.loads(await response.read())
            return result

    async def reset(self) -> None:
        await self._post("/reset")

    async def watch(self, portal_ids: list[str]) -> None:
        """Report these portals' latency apart as well (``watched_latency_ms``)."""
        await self._post("/watch", orjson.dumps(portal_ids))

    async def down(self, portal_id: str, retry_after_s: int | None = None) -> None:
        query = "" if retry_after_s is None else f"?retry_after_s={retry_after_s}"
        await self._post(f"/down/{portal_id}{query}")

    async def up(self, portal_id: str) -> None:
        await self._post(f"/up/{portal_id}")

    async def set_engine_key(self, engine_key: str) -> None:
        await self._post("/keys", orjson.dumps({"engine_public_key": engine_key}))

    async def reload_keys(self) -> None:
        """Re-read the keys file the sink was started with."""
        await self._post("/keys")

    async def wait_for_events(
        self, count: int, timeout_s: float, poll_s: float = 0.2
    ) -> dict[str, Any]:
        """Poll until at least ``count`` new events arrived; the last stats either way."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = await self.stats()
            if current["events"] >= count or time.monotonic() >= deadline:
                return current
            await asyncio.sleep(poll_s)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._stdout_drain is not None:
            self._stdout_drain.cancel()
            self._stdout_drain = None


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark portal sink (one process, many portals)"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=Path, required=True, help="JSON keys file")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
