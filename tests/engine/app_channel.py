"""A small channel plug-in with an app-level webhook, for the engine's side of the contract.

It speaks Meta's shape in miniature (docs/channels/contract.md, "One webhook for many
connectors"): one POST per app, ``X-Hub-Signature-256`` over the raw body keyed by the app
secret, ``{"object": "app", "entry": [{"id": <account>, "messages": [...],
"receipts": [...]}]}`` batched across accounts, and the ``hub.*`` GET handshake. It is
registered under ``apphook`` for the tests that use it (``registered``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import aiohttp
import orjson
from pydantic import Field

from channels.base import (
    AppWebhookPart,
    Capabilities,
    Channel,
    Credentials,
    RawRequest,
    VerifyContext,
    WebhookParse,
    WebhookReply,
)
from channels.key_cache import KeyCache
from channels.registry import CHANNELS
from channels.webhook_body import decode_json
from engine.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    PermanentSendError,
    UnavailableError,
)
from engine.ids import inbound_event_id
from engine.models import (
    ChannelEvent,
    Customer,
    DialogTarget,
    InboundMessage,
    ReplyRequest,
    Route,
    SentReceipt,
    TextContent,
)

SIGNATURE_HEADER = "x-hub-signature-256"


class AppHookCredentials(Credentials):
    app_secret: str = Field(min_length=1, description="Signs every app-level POST.")
    verify_token: str = Field(min_length=1, description="Proves the GET handshake.")
    account_id: str = Field(min_length=1, description="The entry id that is this connector's.")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AppHookChannel(Channel):
    name: ClassVar[str] = "apphook"
    credentials_model: ClassVar[type[Credentials]] = AppHookCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=1000)
    app_webhook: ClassVar[bool] = True
    app_reply: ClassVar[WebhookReply] = WebhookReply(body=b"EVENT_RECEIVED")

    credentials: AppHookCredentials

    @property
    def routing_ids(self) -> frozenset[str]:
        return frozenset({self.credentials.account_id})

    @property
    def verification_key(self) -> str:
        return hashlib.sha256(self.credentials.app_secret.encode()).hexdigest()

    @classmethod
    def split_app_webhook(cls, request: RawRequest) -> list[AppWebhookPart]:
        data = decode_json(request.body)
        if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
            raise BadRequestError("expected {'object': ..., 'entry': [...]}")
        grouped: dict[str, list[Any]] = {}
        for entry in data["entry"]:
            grouped.setdefault(str(entry.get("id")), []).append(entry)
        return [
            AppWebhookPart(
                routing_id,
                RawRequest(
                    request.method,
                    request.path,
                    request.headers,
                    request.query,
                    orjson.dumps({"object": data.get("object"), "entry": entries}),
                ),
            )
            for routing_id, entries in grouped.items()
        ]

    def verify(self, request: RawRequest) -> None:
        presented = request.headers.get(SIGNATURE_HEADER, "")
        expected = signature(self.credentials.app_secret, request.body)
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise AuthError("X-Hub-Signature-256 does not match the body")

    def handshake(self, request: RawRequest) -> WebhookReply:
        if request.query.get("hub.mode") != "subscribe" or "hub.challenge" not in request.query:
            raise BadRequestError("not a subscription handshake")
        token = request.query.get("hub.verify_token", "")
        if not hmac.compare_digest(token.encode(), self.credentials.verify_token.encode()):
            raise ForbiddenError("hub.verify_token is not this connector's")
        return WebhookReply(body=request.query["hub.challenge"].encode())

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        data = decode_json(request.body)
        messages: list[InboundMessage] = []
        events: list[ChannelEvent] = []
        for entry in data["entry"]:
            for item in entry.get("messages", []):
                messages.append(self._message(item, received_at))
            for item in entry.get("receipts", []):
                events.append(self._receipt(item, received_at))
        return WebhookParse(messages=tuple(messages), events=tuple(events))

    def _message(self, item: dict[str, Any], received_at: float) -> InboundMessage:
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, item["mid"]),
            route=self.route,
            dialog_key=item["from"],
            customer=Customer(channel_user_id=item["from"]),
            content=TextContent(text=item["text"]),
            channel_message_id=item["mid"],
            channel_event_id=item["mid"],
            order_key=item["time"],
            sent_at=item["time"] / 1000,
            received_at=received_at,
        )

    def _receipt(self, item: dict[str, Any], received_at: float) -> ChannelEvent:
        event_id = f"{item['mid']}:{item['status']}"
        return ChannelEvent(
            id=inbound_event_id(self.route.connector_id, event_id),
            route=self.route,
            kind=item["status"],
            dialog_key=item["from"],
            customer_id=item["from"],
            channel_event_id=event_id,
            channel_message_ids=(item["mid"],),
            reason=item.get("reason"),
            occurred_at=item["time"] / 1000,
            received_at=received_at,
        )

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        raise PermanentSendError("apphook sends nothing: it tests the inbound side only")


class KeyHookCredentials(Credentials):
    keys_url: str = Field(description="Where the provider publishes its signing keys.")


class KeyHookChannel(AppHookChannel):
    """One connector's webhook signed with keys the provider publishes and rotates: the
    header ``X-Key-Id`` names the key, ``X-Signature`` is the hex HMAC-SHA256 of the body
    with it. Verified asynchronously (``authenticate``), the keys in a ``KeyCache``."""

    name: ClassVar[str] = "keyhook"
    credentials_model: ClassVar[type[Credentials]] = KeyHookCredentials
    app_webhook: ClassVar[bool] = False

    credentials: KeyHookCredentials  # type: ignore[assignment]

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        self._keys: KeyCache[str] | None = None

    def verify(self, request: RawRequest) -> None:
        raise AuthError("keyhook's keys are fetched: the engine awaits authenticate")

    async def authenticate(self, request: RawRequest, context: VerifyContext) -> None:
        if self._keys is None:
            self._keys = KeyCache(self._fetcher(context.session), context.clock, ttl_s=3600)
        key = await self._keys.key(request.headers.get("x-key-id", ""))
        expected = hmac.new(key.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(
            request.headers.get("x-signature", "").encode(), expected.encode()
        ):
            raise AuthError("X-Signature does not match the body")

    def _fetcher(self, session: aiohttp.ClientSession) -> Callable[[], Awaitable[dict[str, str]]]:
        async def fetch() -> dict[str, str]:
            try:
                async with session.get(self.credentials.keys_url) as response:
                    if response.status != 200:
                        raise UnavailableError(f"keys: HTTP {response.status}")
                    body = await response.json()
            except aiohttp.ClientError as exc:
                raise UnavailableError(f"keys: {exc}") from exc
            return {key["kid"]: key["k"] for key in body["keys"]}

        return fetch


@contextmanager
def registered() -> Iterator[None]:
    """``apphook`` and ``keyhook`` in the channel registry for the length of a test."""
    CHANNELS[AppHookChannel.name] = AppHookChannel
    CHANNELS[KeyHookChannel.name] = KeyHookChannel
    try:
        yield
    finally:
        del CHANNELS[AppHookChannel.name]
        del CHANNELS[KeyHookChannel.name]
