"""``POST /hooks/{channel}/{connector_id}``: from a provider's request to durable records.

The order is fixed (STYLE.md §4): size limit (413, enforced by aiohttp), known channel and
connector (404), authenticity on the raw bytes (401), content type (415), parse (400),
validate (422), durable append to this channel actor's own intake (group commit, no Ray
call, no linger), and only then the provider's 2xx. Handing the records to their portal
actors happens after the answer (``engine.handoff``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from aiohttp import web

from channels.base import RawRequest
from channels.registry import channel_class
from engine.errors import EngineError, UnavailableError, UnsupportedMediaTypeError
from engine.handoff import Handoff, InProgress
from engine.ingest import outbox_record
from engine.models import InboundMessage
from engine.placement import host_name
from engine.store.intake import Addressed, IntakeStore
from engine.store.threaded import ThreadedStore
from engine.web.ports import Engine


async def raw_request(request: web.Request) -> RawRequest:
    """The request as channels see it; aiohttp's headers are already case-insensitive."""
    return RawRequest(
        method=request.method,
        path=request.path_qs,
        headers=request.headers,
        query=request.query,
        body=await request.read(),
    )


class WebhookIngest:
    def __init__(
        self,
        engine: Engine,
        intake: ThreadedStore[IntakeStore],
        handoff: Handoff,
        in_progress: InProgress,
    ) -> None:
        self._engine = engine
        self._intake = intake
        self._handoff = handoff
        self._in_progress = in_progress
        self.accepting = True

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """A request whose messages are being stored: refused while the actor stops; while
        it runs, its start bounds this actor's watermark (``engine.handoff.InProgress``).
        The widget's API (channels/widget/web.py) stores visitors' messages inside it too."""
        if not self.accepting:
            raise UnavailableError("engine is shutting down; retry")
        token = self._in_progress.start()
        try:
            yield
        finally:
            self._in_progress.finish(token)

    async def handle(self, request: web.Request) -> web.Response:
        with self.handling():
            return await self._handle(request)

    async def _handle(self, request: web.Request) -> web.Response:
        channel_name = request.match_info["channel"]
        channel_class(channel_name)
        connector_id = request.match_info["connector_id"]
        connector = self._engine.registry.connector(channel_name, connector_id)
        raw = await raw_request(request)
        channel = self._engine.channel(connector)
        channel.verify(raw)
        if request.content_type != channel.webhook_content_type:
            raise UnsupportedMediaTypeError(
                f"content type {request.content_type!r}; {channel_name} posts "
                f"{channel.webhook_content_type}"
            )
        parsed = channel.parse(raw, self._engine.clock.now())
        counters = self._engine.counters
        for reason in parsed.ignored:
            counters.inc("openlines_ignored_total", channel=channel_name, reason=reason)
        stored = await self.store(parsed.messages, channel_name)
        reply = channel.acknowledge(parsed, stored)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    async def store(self, messages: Sequence[InboundMessage], channel_name: str) -> list[bool]:
        """Durably in the intake (with whatever else is waiting), then handed off later."""
        if not messages:
            return []
        counters = self._engine.counters
        counters.inc("openlines_received_total", len(messages), channel=channel_name)
        pool = self._engine.config.portal_pool_size
        items = [
            Addressed(host_name(message.route.portal_id, pool), outbox_record(message))
            for message in messages
        ]
        try:
            kept = await self._intake.append(items)
        except EngineError:
            raise
        except Exception as exc:  # not stored: the provider must retry
            raise UnavailableError(f"message not stored, retry: {exc}") from exc
        self._handoff.add([row for row in kept if row is not None])
        accepted = [row is not None for row in kept]
        duplicates = len(accepted) - sum(accepted)
        if duplicates:
            counters.inc("openlines_duplicates_total", duplicates, channel=channel_name)
        return accepted
