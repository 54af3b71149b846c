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

from channels.widget.log import LogEntry, LogThread
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


class LiveHub:
    """The live connections of this process, by visitor, fed by one tail of the log."""

    def __init__(self, log_thread: LogThread, counters: Counters, poll_s: float = 0.05) -> None:
        self._log = log_thread
        self._counters = counters
        self._poll_s = poll_s
        self._by_visitor: dict[str, set[LiveConnection]] = {}
        self._tail_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()

    @property
    def connections(self) -> int:
        return sum(len(held) for held in self._by_visitor.values())

    async def start(self) -> None:
        self._tail_seq = await self._log.call(self._log.store.head)
        self._task = asyncio.create_task(self._tail())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for held in self._by_visitor.values():
            for connection in held:
                connection.close()

    def nudge(self) -> None:
        """Something was appended in this process: tail now rather than at the next poll
        (what other processes append is found by the poll)."""
        self._nudged.set()

    def add(self, connection: LiveConnection) -> None:
        """Register before reading the backlog: nothing written after the read is missed."""
        self._by_visitor.setdefault(connection.visitor_id, set()).add(connection)

    def remove(self, connection: LiveConnection) -> None:
        held = self._by_visitor.get(connection.visitor_id)
        if held is not None:
            held.discard(connection)
            if not held:
                del self._by_visitor[connection.visitor_id]
        connection.close()

    async def _tail(self) -> None:
        while True:
            try:
                entries = await self._log.call(self._log.store.since, self._tail_seq, TAIL_BATCH)
            except Exception:  # a loop boundary: the next poll reads the same entries again
                log.exception("widget live hub: reading the log failed")
                self._counters.inc("openlines_loop_errors_total", loop="widget_tail")
                await asyncio.sleep(1.0)
                continue
            if entries:
                self._tail_seq = entries[-1].seq
                self._fan_out(entries)
            if len(entries) < TAIL_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), self._poll_s)
                self._nudged.clear()

    def _fan_out(self, entries: list[LogEntry]) -> None:
        by_visitor: dict[str, list[LogEntry]] = {}
        for entry in entries:
            if entry.visitor_id in self._by_visitor:
                by_visitor.setdefault(entry.visitor_id, []).append(entry)
        for visitor_id, mine in by_visitor.items():
            for connection in self._by_visitor.get(visitor_id, ()):
                connection.offer(mine)
