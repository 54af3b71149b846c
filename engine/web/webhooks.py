"""``/hooks/{channel}/{connector_id}`` and ``/hooks/{channel}``: from a provider's request to
durable records.

The order is fixed (STYLE.md §4): size limit (413, enforced by aiohttp), known channel and
connector (404), authenticity on the raw bytes (401), content type (415), parse (400),
validate (422), durable append to this channel actor's own intake (group commit, no Ray
call, no linger), and only then the provider's 2xx. Handing the records to their portal
actors happens after the answer (``engine.handoff``).

A GET is the provider's handshake (``Channel.handshake``). An app-level webhook (Meta's one
callback for many pages, accounts and numbers) is split by the ids inside into each
connector's part, verified once per distinct secret and stored together
(docs/channels/contract.md, "One webhook for many connectors").

Every refusal is logged once with channel, connector and reason, and counted in
``openlines_webhook_refused_total`` with those labels: an operator sees a forged-traffic
storm or a provider stuck retrying, and which connector it hits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

import aiohttp
from aiohttp import web

from channels.base import (
    AppWebhookPart,
    Channel,
    RawRequest,
    VerifyContext,
    WebhookParse,
    WebhookReply,
)
from channels.registry import channel_class
from engine.config import ConnectorConfig
from engine.errors import (
    EngineError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from engine.handoff import Handoff, InProgress
from engine.ingest import addressed
from engine.models import ChannelEvent, InboundMessage
from engine.store.intake import IntakeStore
from engine.store.threaded import ThreadedStore
from engine.web.ports import Engine

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
"""The connector label of a refusal whose connector is not known: an attacker's made-up ids
must not each become a metric series."""


async def raw_request(request: web.Request) -> RawRequest:
    """The request as channels see it; aiohttp's headers are already case-insensitive."""
    return RawRequest(
        method=request.method,
        path=request.path_qs,
        headers=request.headers,
        query=request.query,
        body=await request.read(),
    )


def reply_response(reply: WebhookReply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


class WebhookIngest:
    def __init__(
        self,
        engine: Engine,
        intake: ThreadedStore[IntakeStore],
        handoff: Handoff,
        in_progress: InProgress,
        session: aiohttp.ClientSession,
    ) -> None:
        self._engine = engine
        self._session = session
        self._intake = intake
        self._handoff = handoff
        self._in_progress = in_progress
        self.accepting = True

    @property
    def session(self) -> aiohttp.ClientSession:
        """This actor's client session for outbound calls (verification keys, media)."""
        return self._session

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

    # --- routes

    async def handle(self, request: web.Request) -> web.Response:
        """POST ``/hooks/{channel}/{connector_id}``: one connector's webhook."""
        return await self._guarded(request, self._handle)

    async def handle_app(self, request: web.Request) -> web.Response:
        """POST ``/hooks/{channel}``: an app-level webhook for many connectors."""
        return await self._guarded(request, self._handle_app)

    async def handshake(self, request: web.Request) -> web.Response:
        """GET ``/hooks/{channel}/{connector_id}``: the provider's subscription check."""
        return await self._refusals_logged(request, self._handshake)

    async def app_handshake(self, request: web.Request) -> web.Response:
        """GET ``/hooks/{channel}``: the app-level subscription check."""
        return await self._refusals_logged(request, self._app_handshake)

    # --- refusals

    async def _guarded(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> web.Response:
        if not self.accepting:
            self._refused(request, UnavailableError("engine is shutting down; retry"))
        with self.handling():
            return await self._refusals_logged(request, handler)

    async def _refusals_logged(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> web.Response:
        try:
            return await handler(request)
        except EngineError as exc:
            self._refused(request, exc)
            raise  # the error middleware answers it (engine.web.middleware)

    def _refused(self, request: web.Request, exc: EngineError) -> None:
        channel = request.match_info.get("channel", UNKNOWN)
        connector_id = request.match_info.get("connector_id")
        known = connector_id is not None and connector_id in self._engine.registry.connectors
        self._engine.counters.inc(
            "openlines_webhook_refused_total",
            channel=channel if _known_channel(channel) else UNKNOWN,
            connector=connector_id if known and connector_id else UNKNOWN,
            reason=exc.reason,
        )
        log.warning(
            "webhook refused: channel=%s connector=%s reason=%s status=%d: %s",
            channel,
            connector_id or "-",
            exc.reason,
            exc.http_status,
            exc,
        )

    # --- one connector

    async def _handle(self, request: web.Request) -> web.Response:
        channel = self._connector_channel(request)
        raw = await raw_request(request)
        await channel.authenticate(raw, self._verify_context())
        self._check_content_type(request, channel)
        parsed = channel.parse(raw, self._engine.clock.now())
        self._count_ignored(channel.name, parsed.ignored)
        stored = await self.store(parsed.messages, channel.name, parsed.events)
        return reply_response(channel.acknowledge(parsed, stored[: len(parsed.messages)]))

    async def _handshake(self, request: web.Request) -> web.Response:
        channel = self._connector_channel(request)
        return reply_response(channel.handshake(await raw_request(request)))

    def _connector_channel(self, request: web.Request) -> Channel:
        channel_name = request.match_info["channel"]
        channel_class(channel_name)
        connector_id = request.match_info["connector_id"]
        return self._engine.channel(self._engine.registry.connector(channel_name, connector_id))

    def _verify_context(self) -> VerifyContext:
        return VerifyContext(self._session, self._engine.clock)

    def _check_content_type(self, request: web.Request, channel: Channel) -> None:
        if request.content_type != channel.webhook_content_type:
            raise UnsupportedMediaTypeError(
                f"content type {request.content_type!r}; {channel.name} posts "
                f"{channel.webhook_content_type}"
            )

    # --- one webhook for many connectors

    async def _handle_app(self, request: web.Request) -> web.Response:
        cls = self._app_channel_class(request)
        raw = await raw_request(request)
        parts = cls.split_app_webhook(raw)
        owners = self._app_connectors(cls)
        known = [(owners[part.routing_id], part) for part in parts if part.routing_id in owners]
        unknown = sorted({part.routing_id for part in parts if part.routing_id not in owners})
        if not known:
            raise NotFoundError(
                f"no {cls.name} connector for {', '.join(unknown) or 'an empty body'}; "
                "connect it (openlines connect) or unsubscribe it from the app"
            )
        verified: set[str] = set()
        for channel, _ in known:  # the app's secret, once per distinct one
            if channel.verification_key not in verified:
                await channel.authenticate(raw, self._verify_context())
                verified.add(channel.verification_key)
        self._check_content_type(request, known[0][0])
        for routing_id in unknown:
            self._unknown_entries(cls.name, routing_id)
        results = [self._parse_part(channel, part) for channel, part in known]
        for parsed in results:
            self._count_ignored(cls.name, parsed.ignored)
        messages = [m for parsed in results for m in parsed.messages]
        events = [e for parsed in results for e in parsed.events]
        await self.store(messages, cls.name, events)
        return reply_response(cls.app_reply)

    def _parse_part(self, channel: Channel, part: AppWebhookPart) -> WebhookParse:
        return channel.parse(part.request, self._engine.clock.now())

    async def _app_handshake(self, request: web.Request) -> web.Response:
        """Answered by the first connector of the channel that accepts the verify token."""
        cls = self._app_channel_class(request)
        raw = await raw_request(request)
        channels = list(self._app_connectors(cls).values())
        refusal: EngineError = NotFoundError(f"no {cls.name} connector to answer the handshake")
        for channel in dict.fromkeys(channels):
            try:
                return reply_response(channel.handshake(raw))
            except ForbiddenError as exc:
                refusal = exc
        raise refusal

    def _app_channel_class(self, request: web.Request) -> type[Channel]:
        cls = channel_class(request.match_info["channel"])
        if not cls.app_webhook:
            raise NotFoundError(f"{cls.name} has no app-level webhook; post to its connector's")
        return cls

    def _app_connectors(self, cls: type[Channel]) -> dict[str, Channel]:
        """Each routing id of the channel's connectors, and the connector's channel."""
        owners: dict[str, Channel] = {}
        for connector in self._registry_connectors(cls.name):
            channel = self._engine.channel(connector)
            for routing_id in channel.routing_ids:
                owners[routing_id] = channel
        return owners

    def _registry_connectors(self, channel_name: str) -> list[ConnectorConfig]:
        connectors = self._engine.registry.connectors.values()
        return [c for c in connectors if c.channel == channel_name]

    def _unknown_entries(self, channel_name: str, routing_id: str) -> None:
        """Entries of an id no connector claims, beside known ones: not stored, answered 2xx
        with the rest (an error would make the provider resend the known entries too)."""
        self._engine.counters.inc(
            "openlines_ignored_total", channel=channel_name, reason="unknown_connector"
        )
        log.warning(
            "webhook entries ignored: channel=%s id=%s reason=unknown_connector",
            channel_name,
            routing_id,
        )

    # --- storing

    def _count_ignored(self, channel_name: str, reasons: Sequence[str]) -> None:
        for reason in reasons:
            self._engine.counters.inc(
                "openlines_ignored_total", channel=channel_name, reason=reason
            )

    async def store(
        self,
        messages: Sequence[InboundMessage],
        channel_name: str,
        events: Sequence[ChannelEvent] = (),
    ) -> list[bool]:
        """Durably in the intake (with whatever else is waiting), then handed off later.

        Returns, per message and then per event, whether it was newly stored.
        """
        records: list[InboundMessage | ChannelEvent] = [*messages, *events]
        if not records:
            return []
        counters = self._engine.counters
        counters.inc("openlines_received_total", len(records), channel=channel_name)
        items = addressed(records, self._engine.config.portal_pool_size)
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


def _known_channel(name: str) -> bool:
    try:
        channel_class(name)
    except NotFoundError:
        return False
    return True
