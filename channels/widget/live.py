"""Live connections of one channel actor: each visitor's new log entries, pushed in order.

The hub tails the shared widget log (``WidgetLog.since``) with one query per poll for every
connection it holds, whichever process wrote the entries (a reply is written by a portal
actor, a message by any channel actor). A connection catches up from the cursor its client
sends (the highest ``seq`` it has shown) and then takes what the tail finds, skipping what
it already sent: a client gets each entry once and in ``seq`` order, across reloads, tabs,
network drops and restarts, because the cursor and the log are all there is to it
(docs/channels/widget.md, "The live path back").

An idle connection costs its socket, aiohttp's WebSocket objects and one small
``LiveConnection``; no task waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import orjson

from channels.widget.log import LogEntry
from channels.widget.logs import LogPort, WidgetLogs, home_of
from engine.metrics import Counters

log = logging.getLogger(__name__)

TAIL_BATCH = 1000
SendFrame = Callable[[bytes], Awaitable[None]]


def entry_json(entry: LogEntry) -> bytes:
    """An entry as the widget reads it: its body with ``seq`` and ``at`` added."""
    body = orjson.loads(entry.body)
    body["seq"] = entry.seq
    body["at"] = entry.at
    return orjson.dumps(body)


class LiveConnection:
    """One live connection: sends entries above ``last_sent``, in order, one frame each."""

    __slots__ = ("_pending", "_send", "_sending", "last_sent", "ready", "visitor_id")

    def __init__(self, visitor_id: str, last_sent: int, send: SendFrame) -> None:
        self.visitor_id = visitor_id
        self.last_sent = last_sent
        self.ready = False
        self._send = send
        self._pending: list[LogEntry] = []
        self._sending: asyncio.Task[None] | None = None

    def offer(self, entries: list[LogEntry]) -> None:
        self._pending.extend(entries)
        if self.ready and (self._sending is None or self._sending.done()):
            self._sending = asyncio.create_task(self._drain())

    async def catch_up(self, entries: list[LogEntry]) -> None:
        """Send the backlog, then whatever the tail offered meanwhile."""
        await self._send_all(entries)
        self.ready = True
        await self._drain()

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await self._send_all(batch)

    async def _send_all(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            if entry.seq <= self.last_sent:
                continue
            await self._send(entry_json(entry))
            self.last_sent = entry.seq

    def close(self) -> None:
        if self._sending is not None:
            self._sending.cancel()


class HomeTail:
    """One home's log, read from ``seq`` onwards, every poll or when nudged."""

    def __init__(self, port: LogPort, seq: int) -> None:
        self.port = port
        self.seq = seq
        self.nudged = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.visitors = 0
        """Connections held of this home's visitors (a remote home's tail stops at 0)."""


class LiveHub:
    """The live connections of this process, by visitor, fed by one tail of each log that
    holds a visitor of theirs: this node's always, another node's while this process holds
    a connection of one of its visitors (docs/channels/widget.md, "Across machines")."""

    def __init__(self, logs: WidgetLogs, counters: Counters, poll_s: float = 0.05) -> None:
        self._logs = logs
        self._counters = counters
        self._poll_s = poll_s
        self._by_visitor: dict[str, set[LiveConnection]] = {}
        self._tails: dict[str, HomeTail] = {}

    @property
    def connections(self) -> int:
        return sum(len(held) for held in self._by_visitor.values())

    async def start(self) -> None:
        await self._started_tail(self._logs.home)

    async def _started_tail(self, home: str) -> HomeTail:
        tail = self._tails.get(home)
        if tail is not None:
            return tail
        port = self._logs.of(home)
        head = await port.head()
        tail = self._tails.get(home)  # another connection may have started it meanwhile
        if tail is None:
            tail = self._tails[home] = HomeTail(port, head)
            tail.task = asyncio.create_task(self._tail(home, tail))
        return tail

    async def stop(self) -> None:
        tails = list(self._tails.values())
        self._tails.clear()
        for tail in tails:
            if tail.task is not None:
                tail.task.cancel()
        await asyncio.gather(*(t.task for t in tails if t.task is not None), return_exceptions=True)
        for held in self._by_visitor.values():
            for connection in held:
                connection.close()

    def nudge(self, home: str = "") -> None:
        """Something was appended to ``home``'s log by this process: tail it now rather
        than at the next poll (what other processes append is found by the poll)."""
        tail = self._tails.get(home)
        if tail is not None:
            tail.nudged.set()

    async def add(self, connection: LiveConnection) -> None:
        """Register before reading the backlog: nothing written after the read is missed
        (another home's tail, started here, begins at that log's head before the read)."""
        tail = await self._started_tail(home_of(connection.visitor_id))
        tail.visitors += 1
        self._by_visitor.setdefault(connection.visitor_id, set()).add(connection)

    def remove(self, connection: LiveConnection) -> None:
        held = self._by_visitor.get(connection.visitor_id)
        if held is not None and connection in held:
            held.discard(connection)
            if not held:
                del self._by_visitor[connection.visitor_id]
            self._release(home_of(connection.visitor_id))
        connection.close()

    def _release(self, home: str) -> None:
        tail = self._tails.get(home)
        if tail is None:
            return
        tail.visitors -= 1
        if tail.visitors <= 0 and home != self._logs.home:
            del self._tails[home]
            if tail.task is not None:
                tail.task.cancel()

    async def _tail(self, home: str, tail: HomeTail) -> None:
        while True:
            try:
                entries = await tail.port.since(tail.seq, TAIL_BATCH)
            except Exception:  # a loop boundary: the next poll reads the same entries again
                log.exception("widget live hub: reading the log of home %r failed", home)
                self._counters.inc("openlines_loop_errors_total", loop="widget_tail")
                await asyncio.sleep(1.0)
                continue
            if entries:
                tail.seq = entries[-1].seq
                self._fan_out(entries)
            if len(entries) < TAIL_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tail.nudged.wait(), self._poll_s)
                tail.nudged.clear()

    def _fan_out(self, entries: list[LogEntry]) -> None:
        by_visitor: dict[str, list[LogEntry]] = {}
        for entry in entries:
            if entry.visitor_id in self._by_visitor:
                by_visitor.setdefault(entry.visitor_id, []).append(entry)
        for visitor_id, mine in by_visitor.items():
            for connection in self._by_visitor.get(visitor_id, ()):
                connection.offer(mine)
