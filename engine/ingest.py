"""Batching webhooks on their way to the portal actors.

Every webhook waits for its messages to be durable before it is answered. Instead of one
actor call per webhook, the batcher collects the records of all webhooks that arrive within
``linger_s`` (or until ``max_records``) per destination and makes one call; each webhook
then gets its own part of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from engine.clock import Clock
from engine.models import InboundMessage
from engine.store.records import Conversation, OutboxRecord

Send = Callable[[str, list[OutboxRecord]], Awaitable[list[bool]]]

EVENT_KINDS = {"new": "message.received", "edit": "message.edited", "delete": "message.deleted"}


def outbox_record(message: InboundMessage) -> OutboxRecord:
    """How a customer's message is stored: de-duplicated by its connector and channel id."""
    route = message.route
    return OutboxRecord(
        portal_id=route.portal_id,
        event_id=message.id,
        kind=EVENT_KINDS[message.action],
        conversation=Conversation(
            line_id=route.line_id,
            connector_id=route.connector_id,
            channel=route.channel,
            dialog_key=message.dialog_key,
            customer_id=message.customer.channel_user_id,
        ),
        order_key=message.order_key,
        received_at=message.received_at,
        payload=message.model_dump_json().encode(),
        dedup_key=f"{route.connector_id}\x00{message.channel_event_id}",
        best_effort=message.delivery == "best_effort",
    )


@dataclass
class _Pending:
    records: list[OutboxRecord] = field(default_factory=list)
    waiters: list[tuple[int, int, asyncio.Future[list[bool]]]] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None


class IngestBatcher:
    def __init__(self, send: Send, clock: Clock, linger_s: float, max_records: int) -> None:
        self._send = send
        self._clock = clock
        self._linger_s = linger_s
        self._max_records = max_records
        self._pending: dict[str, _Pending] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, destination: str, records: Sequence[OutboxRecord]) -> list[bool]:
        """Durably store ``records`` at ``destination``; per record, False for a duplicate."""
        if not records:
            return []
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        pending = self._pending.setdefault(destination, _Pending())
        start = len(pending.records)
        pending.records.extend(records)
        pending.waiters.append((start, len(records), future))
        if len(pending.records) >= self._max_records:
            self._flush(destination)
        elif pending.flusher is None:
            pending.flusher = asyncio.create_task(self._flush_later(destination))
        return await future

    async def _flush_later(self, destination: str) -> None:
        if self._linger_s > 0:
            await self._clock.sleep(self._linger_s)
        else:
            await asyncio.sleep(0)
        pending = self._pending.get(destination)
        if pending is not None and pending.flusher is asyncio.current_task():
            pending.flusher = None
            self._flush(destination)

    def _flush(self, destination: str) -> None:
        pending = self._pending.pop(destination, None)
        if pending is None or not pending.records:
            return
        if pending.flusher is not None and pending.flusher is not asyncio.current_task():
            pending.flusher.cancel()
        task = asyncio.create_task(self._deliver(destination, pending))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, destination: str, pending: _Pending) -> None:
        try:
            results = await self._send(destination, pending.records)
        except Exception as exc:  # handed to every waiting webhook, none is acknowledged
            for _, _, future in pending.waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        for start, count, future in pending.waiters:
            if not future.done():
                future.set_result(results[start : start + count])

    async def drain(self) -> None:
        """Flush everything collected and wait for it (graceful shutdown)."""
        for destination in list(self._pending):
            self._flush(destination)
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
