"""``POST /hooks/{channel}/{connector_id}``: from a provider's request to durable records.

The order is fixed (STYLE.md §4): size limit (413, enforced by aiohttp), known channel and
connector (404), authenticity on the raw bytes (401), content type (415), parse (400),
validate (422), durable append through the portal actor, and only then the provider's 2xx.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from actors.view import EngineView, call
from channels.base import RawRequest
from channels.registry import channel_class
from engine.errors import EngineError, UnavailableError, UnsupportedMediaTypeError
from engine.ingest import IngestBatcher, outbox_record
from engine.models import InboundMessage
from engine.placement import host_name
from engine.store.records import OutboxRecord


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
    def __init__(self, view: EngineView) -> None:
        self._view = view
        config = view.config
        self._batcher = IngestBatcher(
            self._send, view.clock, config.ingest_linger_ms / 1000, config.ingest_batch_max
        )
        self.accepting = True

    async def _send(self, destination: str, records: list[OutboxRecord]) -> list[bool]:
        result: list[bool] = await call(self._view.host_by_name(destination).append.remote(records))
        return result

    async def handle(self, request: web.Request) -> web.Response:
        if not self.accepting:
            raise UnavailableError("engine is shutting down; retry")
        channel_name = request.match_info["channel"]
        channel_class(channel_name)
        connector = self._view.registry.connector(channel_name, request.match_info["connector_id"])
        raw = await raw_request(request)
        channel = self._view.channel(connector)
        channel.verify(raw)
        if request.content_type != channel.webhook_content_type:
            raise UnsupportedMediaTypeError(
                f"content type {request.content_type!r}; {channel_name} posts "
                f"{channel.webhook_content_type}"
            )
        parsed = channel.parse(raw, self._view.clock.now())
        counters = self._view.counters
        for reason in parsed.ignored:
            counters.inc("openlines_ignored_total", channel=channel_name, reason=reason)
        stored = await self.store(parsed.messages, channel_name)
        reply = channel.acknowledge(parsed, stored)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    async def store(self, messages: Sequence[InboundMessage], channel_name: str) -> list[bool]:
        if not messages:
            return []
        counters = self._view.counters
        counters.inc("openlines_received_total", len(messages), channel=channel_name)
        by_host: dict[str, list[OutboxRecord]] = {}
        pool = self._view.config.portal_pool_size
        for message in messages:
            by_host.setdefault(host_name(message.route.portal_id, pool), []).append(
                outbox_record(message)
            )
        accepted: list[bool] = []
        for destination, records in by_host.items():
            try:
                accepted.extend(await self._batcher.submit(destination, records))
            except EngineError:
                raise
            except Exception as exc:  # not stored: the provider must retry
                raise UnavailableError(f"message not stored, retry: {exc}") from exc
        new = sum(accepted)
        counters.inc("openlines_stored_total", new, channel=channel_name)
        if len(accepted) - new:
            counters.inc("openlines_duplicates_total", len(accepted) - new, channel=channel_name)
        return accepted

    async def drain(self) -> None:
        self.accepting = False
        await self._batcher.drain()
