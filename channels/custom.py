"""The custom connector: our own signed JSON API for any system that is not a listed channel.

Inbound, the system POSTs batches of up to 1000 messages in our universal content format;
outbound, operator replies are POSTed to its ``reply_url``. Both directions are signed with
Standard Webhooks ``v1`` (HMAC-SHA256 over ``{id}.{timestamp}.{body}``) keyed by the
connector's ``signing_secret``. The API is documented in docs/custom-connector.md; benchmarks
and tests drive load through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import aiohttp
import orjson
from pydantic import Field, model_validator

from channels.base import (
    ORDER_KEY_MAX,
    Capabilities,
    Channel,
    Credentials,
    RawRequest,
    WebhookParse,
    WebhookReply,
)
from channels.http_calls import post, retry_after_s
from channels.keyboards import reply_buttons
from channels.webhook_body import decode_json, validate
from engine.errors import PermanentSendError, RetryableSendError
from engine.ids import inbound_event_id, new_id
from engine.models import (
    Content,
    Customer,
    DeliveryKind,
    DialogTarget,
    Frozen,
    InboundAction,
    InboundMessage,
    ReplyRequest,
    Route,
    SentReceipt,
)
from engine.security.webhook_signature import (
    hmac_signature,
    signature_headers,
    verify_hmac,
)

MAX_BATCH_MESSAGES = 1000
SIGNATURE_TOLERANCE_S = 300
# Statuses after which the same reply may well be taken later.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class CustomCredentials(Credentials):
    """The shared secret both directions are signed with, and where replies go."""

    signing_secret: str = Field(
        min_length=16,
        repr=False,
        description="HMAC-SHA256 key (its UTF-8 bytes) of the v1 signatures, both directions.",
    )
    reply_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Where operator replies are POSTed; None refuses replies.",
    )
    request_timeout_s: float = Field(
        default=10, gt=0, description="Total time allowed for one reply POST, in seconds."
    )


class CustomCustomer(Frozen):
    """Who wrote, as the sending system knows them."""

    id: str = Field(min_length=1, max_length=200, description="The customer's id in your system.")
    name: str | None = Field(default=None, max_length=500, description="Display name.")
    username: str | None = Field(default=None, max_length=200, description="Handle, no '@'.")
    profile_url: str | None = Field(default=None, max_length=2000, description="Profile link.")
    phone: str | None = Field(default=None, max_length=50, description="Phone number.")
    language: str | None = Field(default=None, max_length=35, description="IETF language tag.")


class CustomMessage(Frozen):
    """One inbound event as the custom API defines it."""

    event_id: str = Field(min_length=1, max_length=200, description="Your dedup key.")
    chat_id: str = Field(min_length=1, max_length=200, description="The conversation key.")
    sequence: int = Field(
        ge=0, le=ORDER_KEY_MAX, description="Your order of the message within its chat."
    )
    message_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Defaults to event_id."
    )
    sent_at: float = Field(ge=0, allow_inf_nan=False, description="Unix seconds.")
    customer: CustomCustomer = Field(description="The sender.")
    action: InboundAction = Field(default="new", description="new, edit or delete.")
    content: Content | None = Field(default=None, description="Required unless deleting.")
    reply_to: str | None = Field(
        default=None, min_length=1, max_length=200, description="The message_id quoted."
    )
    delivery: DeliveryKind = Field(
        default="guaranteed", description="best_effort: one attempt (typing, read signals)."
    )

    @model_validator(mode="after")
    def _content_unless_delete(self) -> CustomMessage:
        if self.content is None and self.action != "delete":
            raise ValueError(f"content is required for action {self.action!r}")
        return self


class CustomBatch(Frozen):
    """The body of one inbound POST."""

    messages: list[CustomMessage] = Field(
        min_length=1, max_length=MAX_BATCH_MESSAGES, description="1 to 1000 events, in order."
    )


class CustomChannel(Channel):
    """A connector speaking the custom API; ``now`` is the clock signatures are checked by."""

    name: ClassVar[str] = "custom"
    credentials_model: ClassVar[type[Credentials]] = CustomCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=100_000, buttons=False)
    # Every POST of a reply carries its reply_id, and the receiver must show a reply_id once
    # (docs/custom-connector.md): a resend after a restart is harmless by contract.
    idempotent_sends: ClassVar[bool] = True

    credentials: CustomCredentials

    def __init__(
        self, route: Route, credentials: Credentials, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(route, credentials)
        self._now = now
        self._secret = self.credentials.signing_secret.encode()

    # --- inbound

    def verify(self, request: RawRequest) -> None:
        verify_hmac(self._secret, request.headers, request.body, self._now(), SIGNATURE_TOLERANCE_S)

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        data = decode_json(request.body)
        batch = validate(CustomBatch, data)
        return WebhookParse(
            messages=tuple(
                self._inbound(message, raw, received_at)
                for message, raw in zip(batch.messages, data["messages"], strict=True)
            )
        )

    def acknowledge(self, parsed: WebhookParse, stored: Sequence[bool]) -> WebhookReply:
        """``{"accepted": n, "duplicates": m}``: new and already stored messages of the batch."""
        accepted = sum(stored)
        body = orjson.dumps({"accepted": accepted, "duplicates": len(stored) - accepted})
        return WebhookReply(body=body, content_type="application/json")

    def _inbound(
        self, message: CustomMessage, raw: dict[str, Any], received_at: float
    ) -> InboundMessage:
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, message.event_id),
            route=self.route,
            action=message.action,
            dialog_key=message.chat_id,
            customer=_customer(message.customer),
            content=message.content,
            reply_to_channel_message_id=message.reply_to,
            channel_message_id=message.message_id or message.event_id,
            channel_event_id=message.event_id,
            order_key=message.sequence,
            sent_at=message.sent_at,
            edited_at=message.sent_at if message.action == "edit" else None,
            received_at=received_at,
            delivery=message.delivery,
            raw=raw,
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
        """POST the reply to ``reply_url``, signed; each call carries a fresh ``webhook-id``
        and the reply's ``reply_id``, the same on every attempt, to de-duplicate on."""
        reply_url = self.credentials.reply_url
        if reply_url is None:
            raise PermanentSendError("connector has no reply_url")
        body = orjson.dumps(_reply_body(reply_id, target, request))
        webhook_id, headers = self._signed_headers(body)
        answer = await post(
            session,
            reply_url,
            what="reply_url",
            timeout_s=self.credentials.request_timeout_s,
            data=body,
            headers=headers,
            # A signed reply goes to the configured URL only.
            allow_redirects=False,
        )
        retry_after = retry_after_s(answer.headers, self._now())
        return check_response(answer.status, answer.body, retry_after, webhook_id)

    def _signed_headers(self, body: bytes) -> tuple[str, dict[str, str]]:
        """A fresh ``webhook-id`` and the ``v1`` headers signing ``body`` under it, now."""
        webhook_id = new_id("msg")
        timestamp_s = int(self._now())
        signature = hmac_signature(self._secret, webhook_id, timestamp_s, body)
        headers = signature_headers(webhook_id, timestamp_s, signature)
        return webhook_id, {**headers, "content-type": "application/json"}


def check_response(
    status: int, body: bytes, retry_after: float | None, webhook_id: str
) -> SentReceipt:
    """Map the receiver's answer to a receipt or to the send error the caller can act on."""
    if 200 <= status < 300:
        return SentReceipt(channel_message_ids=_message_ids(body) or (webhook_id,))
    text = body[:200].decode("utf-8", "replace")
    message = f"reply_url answered {status}: {text}" if text else f"reply_url answered {status}"
    if status in _RETRYABLE_STATUSES or status >= 500:
        raise RetryableSendError(message, retry_after)
    raise PermanentSendError(message)


def _message_ids(body: bytes) -> tuple[str, ...]:
    """``message_ids`` from a 2xx answer; none when the receiver did not send them."""
    try:
        answer = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        return ()
    ids = answer.get("message_ids") if isinstance(answer, dict) else None
    if not isinstance(ids, list) or not all(isinstance(item, str) and item for item in ids):
        return ()
    return tuple(ids)


def _reply_body(reply_id: str, target: DialogTarget, request: ReplyRequest) -> dict[str, Any]:
    """The reply as the receiver reads it; buttons become numbered options in the text
    (the customer answers with the number or the label: docs/line-messages.md)."""
    request, _ = reply_buttons(CustomChannel.name, request)
    return {
        "reply_id": reply_id,
        "connector_id": target.route.connector_id,
        "dialog_id": target.dialog_id,
        "chat_id": target.dialog_key,
        "customer_id": target.customer_id,
        "content": request.content.model_dump(mode="json"),
        "reply_to": request.reply_to_channel_message_id,
        "client_id": request.client_id,
    }


def _customer(customer: CustomCustomer) -> Customer:
    return Customer(
        channel_user_id=customer.id,
        name=customer.name,
        username=customer.username,
        profile_url=customer.profile_url,
        phone=customer.phone,
        language=customer.language,
    )
