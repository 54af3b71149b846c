"""Customers' media through signed, expiring links (docs/channels/media.md).

``POST /api/v1/media-links`` (a signed portal call) gives a link to one file of one of the
portal's connectors; ``GET /media/{token}`` serves it to whoever holds the link, fetched
from the provider with the connector's own credentials at that moment and streamed through,
never stored, under a size limit and with a content type that cannot run as a page.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from channels.base import Channel, MediaSource
from engine.api_models import MediaLinkBody
from engine.config import ConnectorConfig
from engine.errors import MediaLinkError, NotFoundError, PermanentSendError, RetryableSendError
from engine.security.media_links import MediaLink, open_link, seal_link
from engine.web.common import json_body, json_response, parse_json_model
from engine.web.openapi import ApiCall
from engine.web.portal_api import authenticate
from engine.web.ports import Engine

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 60.0
INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "video/mp4",
        "video/webm",
    }
)
"""Shown in place; anything else is a download of ``application/octet-stream``."""


class MediaApi:
    def __init__(self, engine: Engine, session: aiohttp.ClientSession) -> None:
        self._engine = engine
        self._session = session

    def calls(self) -> list[ApiCall]:
        return [
            ApiCall(
                "POST",
                "/api/v1/media-links",
                self.create_link,
                "A signed link, valid media_link_ttl_s, to a file a customer sent.",
                MediaLinkBody,
                answer='{"url", "expires_at"}',
            )
        ]

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/media/{token}", self.serve, allow_head=False)

    async def create_link(self, request: web.Request) -> web.Response:
        portal, _ = await authenticate(self._engine, request)
        body = parse_json_model(MediaLinkBody, await json_body(request))
        connector = self._connector(portal.id, body.connector_id)
        channel = self._engine.channel(connector)
        if type(channel).media_source is Channel.media_source:
            raise MediaLinkError(f"{connector.channel} does not fetch media", "not_fetchable")
        config = self._engine.config
        expires_at = round(self._engine.clock.now() + config.media_link_ttl_s)
        link = MediaLink(portal.id, connector.id, body.file_id, expires_at)
        base = config.public_url or str(request.url.origin())
        token = seal_link(self._engine.media_link_key, link)
        return json_response({"url": f"{base}/media/{token}", "expires_at": expires_at})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        now = self._engine.clock.now()
        link = open_link(self._engine.media_link_key, request.match_info["token"], now)
        try:
            connector = self._connector(link.portal_id, link.connector_id)
        except NotFoundError:
            raise MediaLinkError("the link's connector is gone", "bad_link") from None
        source = await self._source(self._engine.channel(connector), link)
        limit = self._engine.config.media_max_bytes
        if source.size_bytes is not None and source.size_bytes > limit:
            raise MediaLinkError(f"the file is over {limit} bytes", "too_large")
        return await self._stream(request, source, link, max(1, int(link.expires_at - now)))

    def _connector(self, portal_id: str, connector_id: str) -> ConnectorConfig:
        connector = self._engine.registry.connectors.get(connector_id)
        if connector is None or connector.portal != portal_id:
            raise NotFoundError(f"unknown connector {connector_id!r}")
        return connector

    async def _source(self, channel: Channel, link: MediaLink) -> MediaSource:
        try:
            return await channel.media_source(self._session, link.file_id)
        except PermanentSendError as exc:
            raise MediaLinkError(f"the provider has no such file: {exc}", "file_gone") from None
        except RetryableSendError as exc:
            raise MediaLinkError(f"the provider failed: {exc}", "provider_failed") from None

    async def _stream(
        self, request: web.Request, source: MediaSource, link: MediaLink, max_age_s: int
    ) -> web.StreamResponse:
        """Pipe the provider's answer through; its URL is never quoted (it may hold a token)."""
        limit = self._engine.config.media_max_bytes
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        try:
            async with self._session.get(
                source.url, headers=dict(source.headers), timeout=timeout
            ) as upstream:
                if upstream.status in (404, 410):
                    raise MediaLinkError("the provider has no such file", "file_gone")
                if upstream.status != 200:
                    raise MediaLinkError(
                        f"the provider answered {upstream.status}", "provider_failed"
                    )
                if upstream.content_length is not None and upstream.content_length > limit:
                    raise MediaLinkError(f"the file is over {limit} bytes", "too_large")
                response = web.StreamResponse(
                    headers=_headers(upstream.content_type or source.mime_type, source, max_age_s)
                )
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                await _pipe(request, upstream, response, limit, link)
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning(
                "media %s/%s: the provider did not answer (%s)",
                link.connector_id,
                link.file_id,
                type(exc).__name__,
            )
            raise MediaLinkError("the provider did not answer", "provider_failed") from None


async def _pipe(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    limit: int,
    link: MediaLink,
) -> None:
    """Copy the body; a body that grows past ``limit`` is cut off: the connection is
    aborted, so the caller sees a broken download, never a whole-looking shorter one."""
    sent = 0
    async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
        sent += len(chunk)
        if sent > limit:
            log.warning("media %s/%s: cut past %d bytes", link.connector_id, link.file_id, limit)
            response.force_close()
            if request.transport is not None:
                request.transport.abort()
            return
        await response.write(chunk)
    await response.write_eof()


def _headers(content_type: str | None, source: MediaSource, max_age_s: int) -> dict[str, str]:
    kind = (content_type or "").split(";")[0].strip().lower()
    inline = kind in INLINE_TYPES
    name = (source.name or "file").replace('"', "").replace("\\", "")
    disposition = "inline" if inline else "attachment"
    return {
        "Content-Type": kind if inline else "application/octet-stream",
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": f"private, max-age={max_age_s}",
    }
