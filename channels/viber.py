"""Viber REST Bot API: webhook callbacks in, ``/pa/send_message`` out.

Wire format and quirks: channels.md section 3. Viber signs each callback with an HMAC-SHA256
of the raw body keyed by the bot's auth token, in the ``X-Viber-Content-Signature`` header
and again as the webhook URL's ``sig`` query parameter; the header is preferred. The token
is required, so a connector cannot be built that accepts unsigned callbacks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import orjson
from pydantic import BaseModel, Field, ValidationError

from channels import viber_setup
from channels.base import (
    ApiBaseUrl,
    Capabilities,
    Channel,
    Credentials,
    RawRequest,
    WebhookParse,
    order_key_out_of_range,
)
from channels.http_calls import json_object, post, retry_after_s, retryable_status
from channels.keyboards import reply_buttons
from channels.partial_sends import ResumeMemory
from channels.render import Part, TextPart, render
from channels.viber_setup import ViberConnect
from channels.viber_types import (
    ViberCallback,
    ViberMessage,
    ViberMessageEvent,
    ViberStatusEvent,
    ViberUser,
)
from channels.webhook_body import decode_json, validate
from engine.errors import AuthError, PermanentSendError, RetryableSendError, ValidationFailedError
from engine.ids import inbound_event_id
from engine.models import (
    RECEIPT_KINDS,
    ChannelEvent,
    ChannelEventKind,
    ContactContent,
    Content,
    Customer,
    DialogTarget,
    FileContent,
    FileRef,
    ImageContent,
    InboundMessage,
    LocationContent,
    ReplyRequest,
    Route,
    SentReceipt,
    StickerContent,
    TextContent,
    VideoContent,
)
from engine.validation import describe_validation_error

SIGNATURE_HEADER = "x-viber-content-signature"
SEND_PATH = "/pa/send_message"
# Viber counts characters without saying how; UTF-16 units are never fewer than code points.
MAX_TEXT_UTF16 = 7000
# The picture description limit is from Viber's send_message reference, not channels.md.
MAX_CAPTION_UTF16 = 768
# Rate control breach: the per-user quota without a reply from the user (channels.md 3.7).
_RETRYABLE_STATUSES = frozenset({12})
# Callbacks that are channel events (docs/channels/contract.md), by Viber's event name.
_EVENT_KINDS: dict[str, ChannelEventKind] = {
    "delivered": "delivered",
    "seen": "read",
    "failed": "failed",
    "subscribed": "subscribed",
    "unsubscribed": "unsubscribed",
}
# Callbacks the engine has no use for: no customer message, but a 200 all the same.
# conversation_started: the user opened the chat; no dialog until they write.
_IGNORED_EVENTS = frozenset({"conversation_started", "client_status"})


class ViberCredentials(Credentials):
    """One bot: the token that both authenticates our calls and signs Viber's callbacks."""

    auth_token: str = Field(
        min_length=1,
        repr=False,
        description="The bot's auth token: X-Viber-Auth-Token out, the HMAC key of callbacks in.",
    )
    api_base_url: ApiBaseUrl = Field(
        default="https://chatapi.viber.com", description="Bot API server, or a test stand-in."
    )
    sender_name: str = Field(
        default="Support",
        min_length=1,
        max_length=28,
        description="The name shown as the sender of our messages (Viber allows 28 characters).",
    )
    request_timeout_s: float = Field(
        default=30, gt=0, description="Total time allowed for one API call, in seconds."
    )


def order_key(timestamp_ms: int, message_token: int) -> int:
    """A dialog's order: the millisecond timestamp, ties broken by the token's low 10 bits.

    Viber gives no per-chat sequence, only a millisecond ``timestamp``; two messages of one
    user in one millisecond (pictures shared together) would tie, and a tie is ordered by
    arrival, which differs between redeliveries. The token breaks it deterministically. Its
    order is undocumented, but recorded tokens look time-based with a counter in the low
    bits, so the low bits likely follow the sending order; at worst the tie-break is
    arbitrary, never a reorder across milliseconds. The key stays far inside int64.
    """
    return (timestamp_ms << 10) | (message_token & 0x3FF)


class ViberChannel(Channel):
    """A Viber bot connector.

    Viber bots cannot quote, so ``reply_to_channel_message_id`` is not sent. A file goes out
    as a text with its URL (and caption): ``send_message`` needs the file's size, which a
    reply does not carry. A picture is sent by URL, Viber downloads it.

    A reply of several messages (a long text, a picture and a caption too long for it) that
    fails at part k after earlier parts went out is remembered (``ResumeMemory``), like
    Telegram's, and a retry of the same target and request resumes at part k; Viber has no
    idempotency key to make a resend harmless.
    """

    name: ClassVar[str] = "viber"
    credentials_model: ClassVar[type[Credentials]] = ViberCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_UTF16, files=False, max_caption_chars=MAX_CAPTION_UTF16
    )
    connect_model: ClassVar[type[BaseModel] | None] = ViberConnect
    RESUME_MEMORY: ClassVar[int] = 1024

    credentials: ViberCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        self._key = self.credentials.auth_token.encode()
        self._resume = ResumeMemory(self.RESUME_MEMORY)

    # --- connecting (docs/channels/viber.md, "Connecting")

    @classmethod
    async def prepare_connect(
        cls, session: aiohttp.ClientSession, given: BaseModel
    ) -> dict[str, object]:
        assert isinstance(given, ViberConnect)
        return await viber_setup.prepare(session, given)

    async def subscribe(
        self, session: aiohttp.ClientSession, webhook_url: str
    ) -> dict[str, object]:
        creds = self.credentials
        await viber_setup.set_webhook(session, creds.api_base_url, creds.auth_token, webhook_url)
        return {}

    async def unsubscribe(self, session: aiohttp.ClientSession, webhook_url: str) -> None:
        creds = self.credentials
        await viber_setup.set_webhook(session, creds.api_base_url, creds.auth_token, "")

    # --- inbound

    def verify(self, request: RawRequest) -> None:
        presented = request.headers.get(SIGNATURE_HEADER)
        if presented is None:
            presented = request.query.get("sig")
        if presented is None:
            raise AuthError("missing X-Viber-Content-Signature header and sig query parameter")
        expected = hmac.new(self._key, request.body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected):
            raise AuthError("X-Viber-Content-Signature does not match the body")

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        data = _decode(request.body)
        event = validate(ViberCallback, data, "callback").event
        if event == "webhook":
            return WebhookParse(ignored=("webhook",))  # set_webhook's check: a 200 is all
        if event in _IGNORED_EVENTS:
            return WebhookParse(ignored=(event,))
        if event in _EVENT_KINDS:
            return self._status_event(_EVENT_KINDS[event], data, received_at)
        if event != "message":
            return WebhookParse(ignored=(f"unsupported_update:{event}",))
        callback = validate(ViberMessageEvent, data, "callback")
        # The order key shifts the millisecond timestamp by 10 bits (``order_key``): 2**53
        # keeps it in int64, and a JavaScript portal reads the timestamp exactly.
        out_of_range = order_key_out_of_range("timestamp", callback.timestamp, 2**53 - 1)
        if out_of_range is not None:  # Viber resends anything not answered 200
            return WebhookParse(ignored=(out_of_range,))
        content = _content(callback.message)
        if content is None:
            return WebhookParse(ignored=(f"unsupported_content:{callback.message.type}",))
        return WebhookParse(messages=(self._inbound(callback, content, data, received_at),))

    def _status_event(
        self, kind: ChannelEventKind, data: dict[str, Any], received_at: float
    ) -> WebhookParse:
        """A receipt, failure or (un)subscription; receipts name our message by its token."""
        callback = validate(ViberStatusEvent, data, "callback")
        user_id = callback.user.id if callback.user is not None else callback.user_id
        if user_id is None:
            raise ValidationFailedError("callback.user_id: Field required")
        token = str(callback.message_token)
        # A token is one message's (ours for receipts) and each kind comes once for it.
        event_id = f"{token}:{kind}"
        event = ChannelEvent(
            id=inbound_event_id(self.route.connector_id, event_id),
            route=self.route,
            kind=kind,
            dialog_key=user_id,
            customer_id=user_id,
            channel_event_id=event_id,
            channel_message_ids=(token,) if kind in RECEIPT_KINDS else (),
            reason=callback.desc if kind == "failed" else None,
            occurred_at=callback.timestamp / 1000,
            received_at=received_at,
            raw=_raw(data),
        )
        return WebhookParse(events=(event,))

    def _inbound(
        self,
        callback: ViberMessageEvent,
        content: Content,
        data: dict[str, Any],
        received_at: float,
    ) -> InboundMessage:
        token = str(callback.message_token)
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, token),
            route=self.route,
            action="new",  # Viber has no edits or deletions for bots
            dialog_key=callback.sender.id,
            customer=_customer(callback.sender),
            content=content,
            channel_message_id=token,
            channel_event_id=token,
            order_key=order_key(callback.timestamp, callback.message_token),
            sent_at=callback.timestamp / 1000,
            received_at=received_at,
            extras=_extras(callback),
            raw=_raw(data),
        )

    # --- outbound

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        """Send the reply's messages in order; without an idempotency key in
        ``send_message`` the channel does not declare ``idempotent_sends``."""
        messages = _render(request)

        async def send_part(index: int) -> str:
            body = {
                "receiver": target.dialog_key,
                "min_api_version": 1,
                "sender": {"name": self.credentials.sender_name},
                **messages[index],
            }
            return await self._call(session, body)

        return await self._resume.send(target, request, len(messages), send_part)

    async def _call(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> str:
        """One ``send_message``; returns the message token or raises the mapped send error."""
        answer = await post(
            session,
            f"{self.credentials.api_base_url}{SEND_PATH}",
            what="viber send_message",
            timeout_s=self.credentials.request_timeout_s,
            data=orjson.dumps(body),
            headers={
                "X-Viber-Auth-Token": self.credentials.auth_token,
                "Content-Type": "application/json",
            },
        )
        return check_response(answer.status, answer.body, answer.headers)


def check_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """Map a ``send_message`` answer to the message token or to the send error to act on.

    Viber answers HTTP 200 even on failure; the body's ``status`` decides (channels.md 3.7):
    0 is success, 12 (too many requests) may pass later, every other status (receiver not
    registered or subscribed, bad token, blocked or unbilled account, bad data) will not.
    Status 12 names no wait: the reply sender's back-off retries it; an HTTP 429 or 5xx from
    Viber's front servers waits their ``Retry-After`` (docs/channels/viber.md, "Throttling").
    """
    headers = headers or {}
    payload = json_object("viber send_message", status, body, headers)
    if retryable_status(status):
        raise RetryableSendError(f"viber send_message: HTTP {status}", retry_after_s(headers))
    if status != 200:
        raise PermanentSendError(
            f"viber send_message: HTTP {status}: {payload.get('status_message')}"
        )
    code = payload.get("status")
    if code == 0:
        token = payload.get("message_token")
        if isinstance(token, bool) or not isinstance(token, int):
            raise PermanentSendError("viber send_message: answer without a message_token")
        return str(token)
    description = f"viber send_message: status {code}: {payload.get('status_message')}"
    if code in _RETRYABLE_STATUSES:
        raise RetryableSendError(description, retry_after_s(headers))
    raise PermanentSendError(description)


# --- rendering a reply into send_message bodies


def _render(request: ReplyRequest) -> list[dict[str, Any]]:
    """The message-specific part of each ``send_message`` body, in order (``channels.render``:
    a file goes as its URL, a caption too long for a picture follows it as text); the last
    carries the keyboard (docs/line-messages.md, "Buttons")."""
    request, buttons = reply_buttons(ViberChannel.name, request)
    messages = [_message(part) for part in render(request, ViberChannel.capabilities)]
    messages[-1].update(buttons)
    return messages


def _message(part: Part) -> dict[str, Any]:
    """``text`` is required on a picture, empty when there is nothing to say."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "picture", "media": part.url, "text": part.caption or ""}


# --- normalizing a callback


def _decode(body: bytes) -> dict[str, Any]:
    """The callback as a dict. orjson keeps integers up to 64 bits exact, ``message_token``'s
    range; a larger one would become a float, which ``ViberMessageEvent`` refuses."""
    data = decode_json(body)
    if not isinstance(data, dict):
        raise ValidationFailedError(f"callback: expected a JSON object, got {type(data).__name__}")
    return data


def _raw(data: dict[str, Any]) -> dict[str, Any]:
    """The callback for audit, ``message_token`` as a string: a 64-bit number above 2**53
    would reach a JavaScript portal rounded (channels.md section 0, rule 4)."""
    token = data.get("message_token")
    if isinstance(token, int) and not isinstance(token, bool):
        return {**data, "message_token": str(token)}
    return data


def _content(message: ViberMessage) -> Content | None:
    """The universal content of a message, or ``None`` for kinds we do not carry."""
    try:
        return _content_of_type(message)
    except ValidationError as exc:  # a value our model refuses, such as a latitude of 91
        raise ValidationFailedError(
            describe_validation_error(exc, prefix=f"message.{message.type}")
        ) from None


def _content_of_type(message: ViberMessage) -> Content | None:
    caption = message.text or None
    media = _media(message)
    if message.type == "text" and message.text:
        return TextContent(text=message.text)
    if message.type == "url" and message.media:
        return TextContent(text=message.media)
    if message.type == "picture" and media is not None:
        return ImageContent(file=media, caption=caption)
    if message.type == "video" and media is not None:
        return VideoContent(file=media, caption=caption)
    if message.type == "file" and media is not None:
        return FileContent(file=media, caption=caption)
    if message.type == "sticker" and message.sticker_id is not None:
        sticker = FileRef(file_id=str(message.sticker_id), url=message.media)
        return StickerContent(file=sticker)
    if message.type == "location" and message.location is not None:
        return LocationContent(latitude=message.location.lat, longitude=message.location.lon)
    if message.type == "contact" and message.contact is not None:
        # Viber sends one name; it is not split into first and last.
        contact = message.contact
        return ContactContent(phone=contact.phone_number, first_name=contact.name)
    return None


def _media(message: ViberMessage) -> FileRef | None:
    """A message's media: Viber has no file ids, the (temporary) URL is the id."""
    if message.media is None:
        return None
    return FileRef(
        file_id=message.media,
        url=message.media,
        name=message.file_name,
        size_bytes=message.size,
        duration_s=message.duration,
    )


def _customer(sender: ViberUser) -> Customer:
    return Customer(channel_user_id=sender.id, name=sender.name, language=sender.language)


def _extras(callback: ViberMessageEvent) -> dict[str, str]:
    sender, message = callback.sender, callback.message
    optional = {
        "avatar_url": sender.avatar,
        "country": sender.country,
        "api_version": str(sender.api_version) if sender.api_version is not None else None,
        "tracking_data": message.tracking_data,
        "thumbnail_url": message.thumbnail,
        "silent": "true" if callback.silent else None,
    }
    return {key: value for key, value in optional.items() if value is not None}
