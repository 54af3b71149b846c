"""Webhook load generator: raw HTTP/1.1 keep-alive over asyncio protocols.

    python -m bench.loadgen --url http://127.0.0.1:8080 --channel telegram \\
        --connector-prefix bench --connections 64 --chats 1000 --duration-s 10

prints one JSON line: ``sent``, ``ok`` (2xx), ``errors`` (requests without a response:
refused or lost connections, timeouts), ``status_counts``, ``duration_s``,
``requests_per_s`` (ok / duration), ``cpu_s`` and ``cpu_percent`` (this generator's own
user+sys time over the load phase, summed over its processes), ``ack_ms`` (time from
writing a request to reading its answer: p50/p95/p99/max/mean/count) and ``steady`` (the
same figures for the requests sent after ``--warm-up-s``, the steady state).

Why not an HTTP client library: measured on this 2-core machine, aiohttp's client topped out
at ~13.6 k requests/s with a core at 100% while the floor server (``bench.floor_server``)
idled at half a core; it would measure itself. Here a request is a byte template and a
response is a status line, a Content-Length and a body to skip: ~6 µs of user time per
request, plus ~18 µs of kernel time that loopback TCP costs the sender whatever the client.
This generator drives the floor server to 100% of its core (~31-36 k requests/s) on ~0.85
of the other.

How the load is shaped, and why:

* One request in flight per connection (no pipelining), like Telegram and Viber.
* Chat affinity: connection ``k`` owns the chats with ``chat % connections == k`` and sends
  them round-robin, each chat's messages in order, the next only after the previous one was
  answered. Providers deliver a chat sequentially, and the engine's per-dialog order relies
  on it. Message ``index = (seq_in_chat - 1) * chats + chat`` is unique over the run.
* Closed loop by default: the next request goes out when the previous response arrived.
  With ``--rate`` each connection paces its share of the aggregate rate; a connection that
  falls behind (its response came late) sends at once until it is back on schedule.
* A request whose connection fails is counted in ``errors`` and resent, as a provider would,
  on a new connection; an HTTP error status is counted and not resent.
* ``--total N`` sends indices ``0..N-1`` exactly once, then stops; otherwise the run stops
  sending at ``--duration-s`` and waits for the answers in flight.
* ``--processes P`` runs P generator processes, each with every P-th connection (and so its
  chats), started together, results summed.
* ``--channel mixed``: chat ``c`` goes to ``("telegram", "vk", "viber")[c % 3]``. The
  connector of a channel is ``<prefix>-<channel>`` (``connector_id``) in every mode.
* ``--warm-up-s W``: the first W seconds of the run are sent as usual but left out of
  ``steady`` (requests sent from W to the end, their answers and acknowledgement times), so
  a closed-loop figure is read once connections, caches and batches have settled.
  ``--duration-s`` includes the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.histogram import LatencyHistogram
from bench.webhooks import webhooks_for

MIXED = ("telegram", "vk", "viber")
CHANNEL_CHOICES = (*MIXED, "mixed")
CONNECT_ATTEMPTS = 20
RECONNECT_DELAY_S = 0.05
DRAIN_TIMEOUT_S = 30.0
"""How long the answers still in flight at the end are waited for."""
MAX_HEAD_BYTES = 65536
_NO_BODY_STATUSES = frozenset({204, 304})
REPO_ROOT = Path(__file__).resolve().parents[1]


def connector_id(prefix: str, channel: str) -> str:
    """The connector a channel's load goes to."""
    return f"{prefix}-{channel}"


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    ack: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Acknowledgement times of every answered request."""
    steady_sent: int = 0
    steady_ok: int = 0
    steady_ack: LatencyHistogram = field(default_factory=LatencyHistogram)
    """The same, for requests sent after the warm-up."""

    def count_status(self, status: int, sent_ns: int, steady: bool) -> None:
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        ok = 200 <= status < 300
        if ok:
            self.ok += 1
        ack_us = (time.monotonic_ns() - sent_ns) // 1000
        self.ack.add(ack_us)
        if steady:
            self.steady_ack.add(ack_us)
            self.steady_ok += ok


class RequestBuilder:
    """Whole HTTP requests as bytes, built at send time so ``sent_ns`` is the send time.

    With ``portals`` set, the load is spread over that many portals: chat ``c`` of a channel
    goes to connector ``<prefix><p>-<channel>`` with ``p = (c // channels) % portals``.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        connector_prefix: str,
        run_id: int,
        portals: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must be http://host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        base_path = parts.path.rstrip("/")
        names = MIXED if channel == "mixed" else (channel,)
        self._channels = len(names)
        self._portals = portals or 1
        prefixes = (
            [connector_prefix]
            if portals is None
            else [f"{connector_prefix}{n}" for n in range(portals)]
        )
        self._hooks = [webhooks_for(name, run_id) for name in names]
        self._heads: list[list[bytes]] = [
            [
                f"POST {base_path}{hooks.path(connector_id(prefix, hooks.channel))} HTTP/1.1"
                f"\r\nHost: {parts.netloc}\r\n".encode()
                for hooks in self._hooks
            ]
            for prefix in prefixes
        ]

    def build(self, index: int, chat: int, seq_in_chat: int) -> bytes:
        channel = chat % self._channels
        portal = (chat // self._channels) % self._portals
        hooks, head = self._hooks[channel], self._heads[portal][channel]
        headers, body = hooks.request(index, chat, seq_in_chat, time.monotonic_ns())
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        return b"%sContent-Length: %d\r\n%s\r\n%s" % (head, len(body), lines.encode(), body)


def lane_plan(
    chats: int, connections: int, lane: int, total: int | None
) -> Iterator[tuple[int, int, int]]:
    """``(index, chat, seq_in_chat)`` of connection ``lane``, in sending order."""
    own = range(lane, chats, connections)
    for round_number in itertools.count():
        base = round_number * chats
        for chat in own:
            index = base + chat
            if total is not None and index >= total:
                return
            yield index, chat, round_number + 1


class _ResponseError(Exception):
    """The server's answer is not HTTP/1.x as we read it."""


class _HttpProtocol(asyncio.Protocol):
    """One TCP connection: parses responses and reports each to its lane."""

    def __init__(self, lane: _Lane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._in_head = True
        self._body_bytes: int | None = None  # the body's length, when the head gave it
        self._chunked = False
        self._status = 0
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.lane.on_connected(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        try:
            while buffer:
                if self._in_head:
                    rest = self._read_head(buffer)
                    if rest is None:
                        break
                    buffer = rest
                end = self._body_end(buffer)
                if end is None:
                    break
                buffer = buffer[end:]
                self._finish_response()
        except (_ResponseError, ValueError) as exc:
            print(f"loadgen: bad response: {exc}", file=sys.stderr)
            buffer = b""
            if self.transport is not None:
                self.transport.close()
        self._buffer = buffer

    def _read_head(self, buffer: bytes) -> bytes | None:
        """Parse the response head at the buffer's start; the bytes after it, or None."""
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _ResponseError("head too large")
            return None
        head = buffer[:head_end].lower()
        if not head.startswith(b"http/1."):
            raise _ResponseError(f"not HTTP/1.x: {head[:40]!r}")
        self._status = status = int(head[9:12])
        connection = _header(head, b"connection")
        if head[7:8] == b"0":
            self._close_after = connection != b"keep-alive"
        else:
            self._close_after = connection == b"close"
        length = _header(head, b"content-length")
        self._in_head = False
        if status < 200 or status in _NO_BODY_STATUSES:
            self._body_bytes = 0
        elif length is not None:
            self._body_bytes = int(length)
        elif _header(head, b"transfer-encoding") == b"chunked":
            self._body_bytes, self._chunked = None, True
        else:
            self._body_bytes = None  # the body runs until the server closes
            self._close_after = True
        return buffer[head_end + 4 :]

    def _body_end(self, buffer: bytes) -> int | None:
        """Where the body ends in ``buffer`` (which starts with it), or None if not yet."""
        if self._body_bytes is not None:
            return self._body_bytes if len(buffer) >= self._body_bytes else None
        if self._chunked:
            return _chunked_end(buffer)
        return None

    def _finish_response(self) -> None:
        self._in_head, self._chunked = True, False
        if self._status < 200:
            return  # an interim response (100 Continue): the real one follows
        if self._close_after and self.transport is not None:
            self.transport.close()
        self.lane.on_response(self._status, self._close_after)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._in_head and self._body_bytes is None and not self._chunked:
            self._finish_response()  # a body delimited by the close is complete now
        self.transport = None
        self.lane.on_lost()


def _header(head: bytes, name: bytes) -> bytes | None:
    """A header's value in a lower-cased response head."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def _chunked_end(buffer: bytes) -> int | None:
    """The offset just past a complete chunked body at the buffer's start, or None."""
    offset = 0
    while True:
        line_end = buffer.find(b"\r\n", offset)
        if line_end < 0:
            return None
        size = int(buffer[offset:line_end].split(b";", 1)[0], 16)
        offset = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", offset - 2)
            return trailer_end + 4 if trailer_end >= 0 else None
        offset += size + 2
        if offset > len(buffer):
            return None


class _Lane:
    """One connection's share of the load: its chats, in order, one request in flight.

    The hot path is callbacks only (response parsed, next request written) with no task
    switch; a coroutine runs only to (re)connect.
    """

    def __init__(
        self,
        builder: RequestBuilder,
        plan: Iterator[tuple[int, int, int]],
        stats: LoadStats,
        interval_s: float | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._builder = builder
        self._plan = plan
        self._stats = stats
        self._interval_s = interval_s
        self._protocol: _HttpProtocol | None = None
        self._pending: tuple[int, int, int] | None = None
        self._in_flight = False
        self._sent_ns = 0
        self._steady = False
        """Whether the request in flight was sent after the warm-up."""
        self._steady_from = 0.0
        self._deadline = float("inf")
        self._next_at = 0.0
        self._reconnecting: asyncio.Task[None] | None = None
        self.done: asyncio.Future[None] = self._loop.create_future()

    async def connect(self) -> bool:
        """Open the connection, retrying a refused one a few times; False when it gave up."""
        for _ in range(CONNECT_ATTEMPTS):
            if self.done.done():
                return False
            try:
                await self._loop.create_connection(
                    lambda: _HttpProtocol(self), self._builder.host, self._builder.port
                )
                return True
            except OSError:
                self._stats.errors += 1
                await asyncio.sleep(RECONNECT_DELAY_S)
        return False

    def start(self, deadline: float, first_at: float, steady_from: float) -> None:
        self._deadline = deadline
        self._steady_from = steady_from
        self._next_at = first_at
        self._schedule()

    def on_connected(self, protocol: _HttpProtocol) -> None:
        self._protocol = protocol

    def _schedule(self) -> None:
        if self._interval_s is None:
            self._send()
            return
        at = self._next_at
        self._next_at += self._interval_s
        if at > self._loop.time():
            self._loop.call_at(at, self._send)
        else:
            self._send()

    def _send(self) -> None:
        if self._in_flight or self.done.done():
            return  # one request in flight: a paced send due meanwhile waits its turn
        if self._pending is None:
            self._pending = next(self._plan, None)
            if self._pending is None:
                self.finish()
                return
        now = self._loop.time()
        if now >= self._deadline:
            self.finish()
            return
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            return  # the reconnect sends it
        request = self._builder.build(*self._pending)
        self._sent_ns = time.monotonic_ns()
        protocol.transport.write(request)
        self._in_flight = True
        self._steady = now >= self._steady_from
        self._stats.sent += 1
        self._stats.steady_sent += self._steady

    def on_response(self, status: int, closing: bool) -> None:
        self._in_flight = False
        self._pending = None
        self._stats.count_status(status, self._sent_ns, self._steady)
        if not closing:
            self._schedule()

    def on_lost(self) -> None:
        self._protocol = None
        if self._in_flight:
            self._in_flight = False
            self._stats.errors += 1  # the pending message is resent on the new connection
        if not self.done.done() and self._reconnecting is None:
            self._reconnecting = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            if await self.connect():
                self._schedule()
            else:
                self.finish()
        finally:
            self._reconnecting = None

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    def abandon(self) -> None:
        """Give up an answer that never came (the drain timed out)."""
        if self._in_flight:
            self._in_flight = False
            self._stats.errors += 1
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        self.finish()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_load(
    url: str,
    channel: str,
    connector_prefix: str,
    *,
    connections: int = 64,
    chats: int = 1000,
    duration_s: float | None = 10.0,
    rate: float | None = None,
    total: int | None = None,
    run_id: int = 0,
    slice_index: int = 0,
    slice_count: int = 1,
    start_at: float | None = None,
    portals: int | None = None,
    warm_up_s: float = 0.0,
) -> dict[str, Any]:
    """Run the load in this process's event loop and return the result dict.

    ``duration_s=None`` runs until ``total`` messages are answered. ``slice_index`` of
    ``slice_count`` takes every ``slice_count``-th connection (how ``--processes`` splits the
    load). ``start_at`` (``time.time()``) holds the first request back until then, once the
    connections are open, so processes start together. Requests sent in the first
    ``warm_up_s`` are left out of ``steady``.
    """
    _check(channel, connections, chats, duration_s, rate, total)
    if duration_s is not None and not 0 <= warm_up_s < duration_s:
        raise ValueError(f"need 0 <= warm_up_s < duration_s, got {warm_up_s} and {duration_s}")
    builder = RequestBuilder(url, channel, connector_prefix, run_id, portals)
    stats = LoadStats()
    own = range(slice_index, connections, slice_count)
    interval_s = connections / rate if rate else None
    lanes = [
        _Lane(builder, lane_plan(chats, connections, k, total), stats, interval_s) for k in own
    ]
    connected = await asyncio.gather(*(lane.connect() for lane in lanes))
    for lane, ok in zip(lanes, connected, strict=True):
        if not ok:
            lane.finish()  # its requests are not sent; the refusals are in ``errors``
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    loop = asyncio.get_running_loop()
    started_at, cpu_before, begin = time.time(), _cpu_s(), loop.time()
    deadline = begin + duration_s if duration_s is not None else float("inf")
    for k, lane in zip(own, lanes, strict=True):
        # Spread paced connections over one interval so they do not send in bursts.
        lane.start(deadline, begin + (k / rate if rate else 0.0), begin + warm_up_s)
    await _drain(lanes, deadline)
    elapsed_s = loop.time() - begin
    cpu_s = _cpu_s() - cpu_before
    for lane in lanes:
        lane.finish()
    await asyncio.sleep(0)  # let the transports close
    steady_s = min(elapsed_s, deadline - begin) - warm_up_s
    return _result(stats, elapsed_s, cpu_s, started_at, steady_s)


async def _drain(lanes: list[_Lane], deadline: float) -> None:
    pending = {lane.done for lane in lanes}
    loop = asyncio.get_running_loop()
    while pending:
        timeout = deadline - loop.time() + DRAIN_TIMEOUT_S
        if timeout <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(timeout, 3600.0))
    for lane in lanes:
        if not lane.done.done():
            lane.abandon()


def _check(
    channel: str,
    connections: int,
    chats: int,
    duration_s: float | None,
    rate: float | None,
    total: int | None,
) -> None:
    if channel not in CHANNEL_CHOICES:
        raise ValueError(f"channel must be one of {CHANNEL_CHOICES}, got {channel!r}")
    if connections < 1 or chats < connections:
        raise ValueError(f"need 1 <= connections <= chats, got {connections} and {chats}")
    if duration_s is None and total is None:
        raise ValueError("give duration_s, total or both")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")


def _result(
    stats: LoadStats, elapsed_s: float, cpu_s: float, started_at: float, steady_s: float
) -> dict[str, Any]:
    return {
        "sent": stats.sent,
        "ok": stats.ok,
        "errors": stats.errors,
        "status_counts": {str(status): n for status, n in sorted(stats.status_counts.items())},
        "duration_s": round(elapsed_s, 4),
        "requests_per_s": round(stats.ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "cpu_s": round(cpu_s, 3),
        "cpu_percent": round(100 * cpu_s / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "ack_ms": stats.ack.summary_ms(),
        "ack_histogram": stats.ack.sparse(),
        "steady": _steady(stats.steady_sent, stats.steady_ok, steady_s, stats.steady_ack),
        "processes": 1,
        "started_at": started_at,
        "ended_at": started_at + elapsed_s,
    }


def _steady(sent: int, ok: int, seconds: float, ack: LatencyHistogram) -> dict[str, Any]:
    return {
        "sent": sent,
        "ok": ok,
        "seconds": round(seconds, 4),
        "requests_per_s": round(ok / seconds, 1) if seconds > 0 else 0.0,
        "ack_ms": ack.summary_ms(),
        "ack_histogram": ack.sparse(),
    }


def _merged(histograms: list[dict[str, int]]) -> LatencyHistogram:
    merged = LatencyHistogram()
    for sparse in histograms:
        merged.merge_sparse(sparse)
    return merged


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the results of processes that ran side by side."""
    started = min(r["started_at"] for r in results)
    ended = max(r["ended_at"] for r in results)
    elapsed_s = ended - started
    status_counts: dict[str, int] = {}
    for result in results:
        for status, n in result["status_counts"].items():
            status_counts[status] = status_counts.get(status, 0) + n
    ok = sum(r["ok"] for r in results)
    cpu_s = sum(r["cpu_s"] for r in results)
    ack = _merged([r["ack_histogram"] for r in results])
    steadies = [r["steady"] for r in results]
    steady_ack = _merged([s["ack_histogram"] for s in steadies])
    steady_s = max(s["seconds"] for s in steadies)
    steady_ok = sum(s["ok"] for s in steadies)
    return {
        "sent": sum(r["sent"] for r in results),
        "ok": ok,
        "errors": sum(r["errors"] for r in results),
        "status_counts": dict(sorted(status_counts.items())),
        "duration_s": round(elapsed_s, 4),
        "requests_per_s": round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "cpu_s": round(cpu_s, 3),
        "cpu_percent": round(100 * cpu_s / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "ack_ms": ack.summary_ms(),
        "ack_histogram": ack.sparse(),
        "steady": _steady(sum(s["sent"] for s in steadies), steady_ok, steady_s, steady_ack),
        "processes": sum(r["processes"] for r in results),
        "started_at": started,
        "ended_at": ended,
    }


def command(
    url: str,
    channel: str,
    connector_prefix: str,
    *,
    connections: int = 64,
    chats: int = 1000,
    duration_s: float | None = 10.0,
    rate: float | None = None,
    total: int | None = None,
    processes: int = 1,
    run_id: int = 0,
    portals: int | None = None,
    warm_up_s: float = 0.0,
    start_at: float | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line that runs this load as a subprocess (from the repository root)."""
    argv = [python, "-m", "bench.loadgen", "--url", url, "--channel", channel]
    argv += ["--connector-prefix", connector_prefix, "--connections", str(connections)]
    argv += ["--chats", str(chats), "--processes", str(processes), "--run-id", str(run_id)]
    if duration_s is not None:
        argv += ["--duration-s", str(duration_s)]
    if rate is not None:
        argv += ["--rate", str(rate)]
    if total is not None:
        argv += ["--total", str(total)]
    if portals is not None:
        argv += ["--portals", str(portals)]
    if warm_up_s:
        argv += ["--warm-up-s", str(warm_up_s)]
    if start_at is not None:
        argv += ["--start-at", repr(start_at)]
    return argv


async def spawn(
    url: str,
    channel: str,
    connector_prefix: str,
    *,
    extra_args: tuple[str, ...] = (),
    **options: Any,
) -> dict[str, Any]:
    """Run the load generator as a subprocess and return its JSON result.

    ``options`` are those of ``command``. Async so a caller's event loop (a portal sink,
    say) keeps running meanwhile; from synchronous code use ``asyncio.run(spawn(...))``.
    Raises ``RuntimeError`` with the generator's stderr when it fails.
    """
    argv = command(url, channel, connector_prefix, **options)
    result = await _run_child([*argv, *extra_args])
    # The histograms are for merging children's results; the summaries stay.
    result.pop("ack_histogram", None)
    result["steady"].pop("ack_histogram", None)
    return result


async def _run_child(argv: list[str]) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await child.communicate()
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"loadgen exited {child.returncode}: {err.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _run_processes(args: argparse.Namespace, duration_s: float | None) -> dict[str, Any]:
    """Split the load over ``args.processes`` children started at the same moment."""
    # Time for the children to import and connect, unless the caller chose the moment.
    start_at = args.start_at if args.start_at is not None else time.time() + 1.0
    base = command(
        args.url,
        args.channel,
        args.connector_prefix,
        connections=args.connections,
        chats=args.chats,
        duration_s=duration_s,
        rate=args.rate,
        total=args.total,
        run_id=args.run_id,
        portals=args.portals,
        warm_up_s=args.warm_up_s,
        start_at=start_at,
    )
    children = [
        _run_child([*base, "--slice", f"{index}/{args.processes}"])
        for index in range(args.processes)
    ]
    return combine(list(await asyncio.gather(*children)))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description="Webhook load generator (see module doc)."
    )
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT of the server")
    parser.add_argument("--channel", choices=CHANNEL_CHOICES, default="telegram")
    parser.add_argument("--connector-prefix", default="bench", help="connectors <prefix>-<channel>")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument(
        "--duration-s", type=float, default=None, help="stop sending after this (default 10 s)"
    )
    parser.add_argument("--rate", type=float, default=None, help="requests/s in aggregate")
    parser.add_argument("--total", type=int, default=None, help="send exactly this many")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--run-id", type=int, default=0, help="0-99: shifts ids and chats")
    parser.add_argument(
        "--portals", type=int, default=None, help="spread over connectors <prefix><n>-<channel>"
    )
    parser.add_argument(
        "--warm-up-s", type=float, default=0.0, help="left out of the steady-state figures"
    )
    parser.add_argument(
        "--start-at", type=float, default=None, help="time.time() of the first request"
    )
    parser.add_argument("--slice", default="0/1", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    duration_s = args.duration_s if args.duration_s is not None or args.total else 10.0
    if args.processes > 1:
        result = asyncio.run(_run_processes(args, duration_s))
    else:
        slice_index, slice_count = (int(part) for part in args.slice.split("/"))
        result = asyncio.run(
            run_load(
                args.url,
                args.channel,
                args.connector_prefix,
                connections=args.connections,
                chats=args.chats,
                duration_s=duration_s,
                rate=args.rate,
                total=args.total,
                run_id=args.run_id,
                slice_index=slice_index,
                slice_count=slice_count,
                start_at=args.start_at,
                portals=args.portals,
                warm_up_s=args.warm_up_s,
            )
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
