"""VK community messages: Callback API webhooks in, ``messages.send`` out.

Wire format and quirks: channels.md section 2. VK signs nothing: its only proof of origin is
the ``secret`` key it copies into every JSON body, so ``verify`` must decode the body to read
it, the one step where authenticity is not a check on raw bytes. A connector without a secret
cannot be built, so an unset secret never means "accept everything".

VK re-sends an event until it reads the body ``ok`` (the ``confirmation`` handshake expects the
confirmation code instead), so every reply is plain text and exactly that, nothing around it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import orjson
from pydantic import BaseModel, Field

from channels import vk_setup
from channels.base import (
    ApiBaseUrl,
    Capabilities,
    Channel,
    Credentials,
    RawRequest,
    WebhookParse,
    WebhookReply,
    order_key_out_of_range,
)
from channels.http_calls import json_object, post, retry_after_s, retryable_status
from channels.keyboards import reply_buttons
from channels.partial_sends import send_parts
from channels.render import TextPart, render, text_parts
from channels.text_split import utf16_units
from channels.vk_setup import VkConnect, VkSetupCalls
from channels.vk_types import (
    VkAttachment,
    VkCallback,
    VkClientInfo,
    VkGeo,
    VkMessage,
    VkMessageNew,
    VkMessagePermission,
    VkMessageRead,
    VkTypingState,
)
from channels.webhook_body import decode_json, validate
from engine.delivery.send_rates import Rate, SendRate
from engine.errors import AuthError, PermanentSendError, RetryableSendError, ValidationFailedError
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
    ChannelEvent,
    Content,
    Customer,
    DialogTarget,
    FileContent,
    FileRef,
    ImageContent,
    InboundAction,
    InboundMessage,
    LocationContent,
    OutboundFile,
    OutboundImage,
    ReplyRequest,
    SentReceipt,
    StickerContent,
    TextContent,
)

SEND_METHOD = "messages.send"
OK_REPLY = WebhookReply(body=b"ok")
# VK's schema says 9000 characters without saying how it counts them; UTF-16 units are never
# fewer than code points, so a part within 9000 units fits either reading.
MAX_TEXT_UTF16 = 9000
CHAT_PEER_OFFSET = 2_000_000_000
RETRYABLE_ERRORS = frozenset({1, 6, 9, 10})
"""Error codes after which the same call may succeed later: 1 unknown (VK: "try again
later"), 6 too many requests per second, 9 flood control, 10 internal server error. Every
other code is permanent (docs/channels/vk.md, "Errors"). None names a wait."""
# What messages.send takes in ``attachment``: <type><owner_id>_<media_id>[_<access_key>].
_ATTACHMENT_ID = re.compile(r"^(?:photo|doc|audio_message|video|audio)-?\d+_\d+(?:_[0-9A-Za-z]+)?$")


class VkCredentials(Credentials):
    """One community: its token for outbound calls and the Callback server's settings."""

    access_token: str = Field(
        min_length=1, repr=False, description="Community access token with the messages scope."
    )
    secret: str = Field(
        min_length=1,
        repr=False,
        description=(
            "The Callback server's secret key; every request must carry it in its 'secret' field."
        ),
    )
    confirmation_code: str = Field(
        min_length=1,
        pattern=r"^\S+$",
        description="The string VK expects in answer to the 'confirmation' event.",
    )
    group_id: int = Field(gt=0, description="The community's id; events for others are refused.")
    callback_server_id: int | None = Field(
        default=None,
        description="The Callback server 'openlines connect' added; 'disconnect' deletes it.",
    )
    api_version: str = Field(
        default="5.199",
        pattern=r"^\d+\.\d+$",
        description=(
            "API version of outbound calls. Inbound shapes follow the Callback server's own "
            "version, which must be 5.103 or later."
        ),
    )
    api_base_url: ApiBaseUrl = Field(
        default="https://api.vk.com",
        description="API server (api.vk.com or api.vk.ru), or a test stand-in.",
    )
    request_timeout_s: float = Field(
        default=30, gt=0, description="Total time allowed for one API call, in seconds."
    )


_MESSAGE_TYPES: dict[str, InboundAction] = {"message_new": "new", "message_edit": "edit"}
# ``message_reply`` echoes every message the community sends, ours and its admins' alike.
_IGNORED_TYPES = {"message_reply": "own_message"}
# Events that are channel events (docs/channels/contract.md), by VK's event type.
_EVENT_TYPES = frozenset({"message_read", "message_typing_state", "message_allow", "message_deny"})


class VkChannel(Channel):
    """A VK community connector.

    Inbound ``channel_message_id`` is the ``conversation_message_id``: the message ``id`` is
    0 in group chats where the community lacks full access (channels.md 2.9), and the
    per-peer counter is also the dialog's order. A reply quotes by it (``forward`` with
    ``is_reply``). The receipt of a sent message is VK's global message id, the only id
    ``messages.send`` answers with.

    Images and files are sent as a text carrying their URL (and caption): VK sends media
    only as ``attachment`` ids obtained by an upload round trip, not done yet. A URL that
    already is such an id (an inbound ``FileRef.file_id``) is sent as the attachment.
    """

    name: ClassVar[str] = "vk"
    credentials_model: ClassVar[type[Credentials]] = VkCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_UTF16, images=False, files=False
    )
    idempotent_sends: ClassVar[bool] = True  # every part carries a random_id fixed by reply_id
    connect_model: ClassVar[type[BaseModel] | None] = VkConnect

    # A community token may make 20 API calls a second (docs/channels/vk.md, "Outbound").
    send_rate: ClassVar[SendRate] = SendRate(per_connector=Rate(per_s=20, burst=20))

    credentials: VkCredentials

    # --- inbound

    # --- connecting (docs/channels/vk.md, "Connecting")

    @classmethod
    async def prepare_connect(
        cls, session: aiohttp.ClientSession, given: BaseModel
    ) -> dict[str, object]:
        assert isinstance(given, VkConnect)
        return await vk_setup.prepare(session, given)

    async def subscribe(
        self, session: aiohttp.ClientSession, webhook_url: str
    ) -> dict[str, object]:
        creds = self.credentials
        calls = VkSetupCalls(session, creds.api_base_url, creds.access_token)
        return await vk_setup.add_server(calls, creds.group_id, webhook_url, creds.secret)

    async def unsubscribe(self, session: aiohttp.ClientSession, webhook_url: str) -> None:
        creds = self.credentials
        if creds.callback_server_id is None:  # configured by hand: nothing of ours to delete
            return
        calls = VkSetupCalls(session, creds.api_base_url, creds.access_token)
        params = {"group_id": creds.group_id, "server_id": creds.callback_server_id}
        await calls("groups.deleteCallbackServer", params)

    def verify(self, request: RawRequest) -> None:
        """Check the ``secret`` and ``group_id`` fields: VK puts its proof inside the JSON.

        Once a secret key is set on the Callback server, VK sends it in every request, the
        ``confirmation`` handshake included, so no request is exempt.
        """
        data = decode_json(request.body)
        presented = data.get("secret") if isinstance(data, dict) else None
        if not isinstance(presented, str):
            raise AuthError("body carries no 'secret' field")
        expected = self.credentials.secret.encode()
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected):
            raise AuthError("'secret' does not match the Callback server's secret key")
        group_id = data.get("group_id")
        if isinstance(group_id, bool) or group_id != self.credentials.group_id:
            raise AuthError(f"group_id {group_id!r} is not this connector's community")

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        data = decode_json(request.body)
        if not isinstance(data, dict):
            raise ValidationFailedError(f"callback: expected a JSON object, got {_kind(data)}")
        callback = validate(VkCallback, data, "callback")
        if callback.type == "confirmation":
            code = self.credentials.confirmation_code.encode()
            return WebhookParse(ignored=("confirmation",), reply=WebhookReply(body=code))
        if callback.type in _IGNORED_TYPES:
            return _ignored(_IGNORED_TYPES[callback.type])
        if callback.type not in _MESSAGE_TYPES and callback.type not in _EVENT_TYPES:
            return _ignored(f"unsupported_update:{callback.type}")
        # VK resends anything not answered "ok", forever: an event the engine cannot read is
        # answered "ok" and counted with the reason, never 422 (docs/channels/vk.md).
        if callback.event_id is None:
            return _ignored(f"no_event_id:{callback.type}")
        if callback.type in _EVENT_TYPES:
            return self._channel_event(callback, data, received_at)
        unreadable = _unreadable_message(callback.type, data.get("object"))
        if unreadable is not None:
            return _ignored(unreadable)
        message, client_info = _message(callback.type, data.get("object"))
        out_of_range = order_key_out_of_range(
            "conversation_message_id", message.conversation_message_id
        )
        if out_of_range is not None:  # VK resends anything not answered "ok"
            return _ignored(out_of_range)
        skip = _skip_reason(message)
        if skip is not None:
            return _ignored(skip)
        picked = _pick_content(message)
        if picked is None:
            first = message.attachments[0].type if message.attachments else "empty"
            return _ignored(f"unsupported_content:{first}")
        inbound = self._inbound(callback, message, picked, client_info, data, received_at)
        return WebhookParse(messages=(inbound,), reply=OK_REPLY)

    def _channel_event(
        self, callback: VkCallback, data: dict[str, Any], received_at: float
    ) -> WebhookParse:
        """A read receipt, typing, or the user allowing or forbidding our messages."""
        assert callback.event_id is not None  # parse answered events without one
        try:
            fields = _event_fields(callback.type, data.get("object"))
        except ValidationFailedError:
            return _ignored(f"unreadable:{callback.type}")
        event = ChannelEvent(
            id=inbound_event_id(self.route.connector_id, callback.event_id),
            route=self.route,
            channel_event_id=callback.event_id,
            occurred_at=received_at,  # VK's events carry no time of their own
            received_at=received_at,
            raw={key: value for key, value in data.items() if key != "secret"},
            **fields,
        )
        return WebhookParse(events=(event,), reply=OK_REPLY)

    def _inbound(
        self,
        callback: VkCallback,
        message: VkMessage,
        picked: tuple[int | None, Content],
        client_info: VkClientInfo | None,
        data: dict[str, Any],
        received_at: float,
    ) -> InboundMessage:
        assert callback.event_id is not None  # parse refused events without one
        action = _MESSAGE_TYPES[callback.type]
        quoted = message.reply_message.conversation_message_id if message.reply_message else None
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, callback.event_id),
            route=self.route,
            action=action,
            dialog_key=str(message.peer_id),
            customer=_customer(message.from_id),
            content=picked[1],
            reply_to_channel_message_id=str(quoted) if quoted is not None else None,
            channel_message_id=str(message.conversation_message_id),
            channel_event_id=callback.event_id,
            order_key=message.conversation_message_id,
            sent_at=float(message.date),
            edited_at=(
                float(message.update_time)
                if action == "edit" and message.update_time is not None
                else None
            ),
            received_at=received_at,
            extras=_extras(message, picked, client_info),
            # The secret must not travel on to storage and portals with the payload.
            raw={key: value for key, value in data.items() if key != "secret"},
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
        """Send each part with its own ``random_id`` (see ``random_id``); a retry of a reply
        that failed half-way, or was cut short by a restart, resends every part, and VK
        drops the ones it already has."""
        peer_id = _peer_id(target.dialog_key)
        calls = _render(peer_id, request)

        async def send_part(index: int) -> str:
            params = {
                "v": self.credentials.api_version,
                "peer_id": str(peer_id),
                "random_id": str(random_id(reply_id, index)),
                **calls[index],
            }
            return str(await self._call(session, params))

        note = "; a retry repeats their random_id, which VK does not deliver twice"
        return await send_parts(send_part, len(calls), retry_note=note)

    async def _call(self, session: aiohttp.ClientSession, params: dict[str, str]) -> int:
        """One ``messages.send`` (a form, the token in a header); returns the message id."""
        answer = await post(
            session,
            f"{self.credentials.api_base_url}/method/{SEND_METHOD}",
            what=f"vk {SEND_METHOD}",
            timeout_s=self.credentials.request_timeout_s,
            data=params,
            headers={"Authorization": f"Bearer {self.credentials.access_token}"},
        )
        return check_response(answer.status, answer.body, answer.headers)


def check_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> int:
    """Map a ``messages.send`` answer to the message id or to the send error to act on.

    VK answers API errors with HTTP 200 and ``{"error": {"error_code", "error_msg"}}``; the
    code decides. Statuses other than 200 come from VK's front servers, which name their
    wait in ``Retry-After``. VK's throttling errors (6 "too many requests per second",
    9 flood control) name no wait: the reply sender's exponential back-off with jitter
    retries them (docs/channels/vk.md, "Throttling").
    """
    headers = headers or {}
    payload = json_object(f"vk {SEND_METHOD}", status, body, headers)
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("error_code")
        description = f"vk {SEND_METHOD}: error {code}: {error.get('error_msg')}"
        if isinstance(code, int) and code in RETRYABLE_ERRORS:
            raise RetryableSendError(description, retry_after_s(headers))
        raise PermanentSendError(description)
    if retryable_status(status):
        raise RetryableSendError(f"vk {SEND_METHOD}: HTTP {status}", retry_after_s(headers))
    message_id = payload.get("response")
    if status != 200 or isinstance(message_id, bool) or not isinstance(message_id, int):
        raise PermanentSendError(f"vk {SEND_METHOD}: HTTP {status} without a message id")
    return message_id


def random_id(reply_id: str, part: int) -> int:
    """The ``random_id`` of part ``part`` of a reply: VK's idempotency key, an int32 > 0.

    VK does not deliver a second message with a ``random_id`` it has seen, so the id is
    derived from the engine's reply id and the part alone: every attempt of a reply, even
    after a restart, repeats it and cannot reach the customer twice, while two replies with
    the same text are two reply ids and two messages. (A hash of the text would merge them.)
    How long VK remembers ids is not documented.
    """
    digest = hashlib.blake2b(f"{reply_id}\x00{part}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1) + 1


# --- rendering a reply into messages.send parameters


def _render(peer_id: int, request: ReplyRequest) -> list[dict[str, str]]:
    """The parameters of each call but the common ones, in order; the first quotes, the last
    carries the keyboard (docs/line-messages.md, "Buttons")."""
    request, buttons = reply_buttons(VkChannel.name, request)
    content = request.content
    calls: list[dict[str, str]]
    if isinstance(content, OutboundImage | OutboundFile) and _ATTACHMENT_ID.match(content.url):
        # Media uploaded to VK already: sent as itself, the caption as the message.
        caption = text_parts(content.caption or "", VkChannel.capabilities, utf16_units)
        calls = [{"message": part.text} for part in caption] or [{}]
        calls[0]["attachment"] = content.url
    else:  # everything else as text: media as its URL (channels.render)
        parts = render(request, VkChannel.capabilities)
        calls = [{"message": part.text} for part in parts if isinstance(part, TextPart)]
    if request.reply_to_channel_message_id is not None:
        calls[0]["forward"] = _quote(peer_id, request.reply_to_channel_message_id)
    calls[-1].update(buttons)
    return calls


def _quote(peer_id: int, conversation_message_id: str) -> str:
    """``forward`` quoting a message of the dialog by its ``conversation_message_id``.

    ``reply_to`` would need the global message id, which bots in group chats do not get.
    """
    try:
        quoted = int(conversation_message_id)
    except ValueError:
        raise PermanentSendError(
            f"reply_to_channel_message_id {conversation_message_id!r} is not a VK "
            "conversation_message_id"
        ) from None
    forward = {"peer_id": peer_id, "conversation_message_ids": [quoted], "is_reply": True}
    return orjson.dumps(forward).decode()


def _peer_id(dialog_key: str) -> int:
    try:
        return int(dialog_key)
    except ValueError:
        raise PermanentSendError(f"dialog_key {dialog_key!r} is not a VK peer_id") from None


# --- normalizing a callback


def _kind(value: Any) -> str:
    return type(value).__name__


def _ignored(reason: str) -> WebhookParse:
    return WebhookParse(ignored=(reason,), reply=OK_REPLY)


def _message(kind: str, data: Any) -> tuple[VkMessage, VkClientInfo | None]:
    """The message of a ``message_new`` or ``message_edit`` object.

    Since API 5.103 ``message_new`` wraps it with ``client_info``; before, and for
    ``message_edit`` always, the object is the message itself. Both are read, so a Callback
    server left on an older version still delivers.
    """
    if kind == "message_new" and isinstance(data, dict) and "message" in data:
        wrapped = validate(VkMessageNew, data, "object")
        return wrapped.message, wrapped.client_info
    return validate(VkMessage, data, "object"), None


def _event_fields(kind: str, data: Any) -> dict[str, Any]:
    """The ``ChannelEvent`` fields of a ``message_read``, ``message_typing_state``,
    ``message_allow`` or ``message_deny`` object."""
    if kind == "message_read":
        read = validate(VkMessageRead, data, "object")
        return {
            "kind": "read",
            "dialog_key": str(read.peer_id),
            "customer_id": str(read.from_id),
            # The newest message read: ours before it in the dialog are read too.
            "channel_message_ids": (str(read.read_message_id),),
        }
    if kind == "message_typing_state":
        typing = validate(VkTypingState, data, "object")
        user = str(typing.from_id)
        return {"kind": "typing", "dialog_key": user, "customer_id": user}
    permission = validate(VkMessagePermission, data, "object")
    user = str(permission.user_id)
    extras = {"key": permission.key} if permission.key else {}
    kind_of = "subscribed" if kind == "message_allow" else "unsubscribed"
    return {"kind": kind_of, "dialog_key": user, "customer_id": user, "extras": extras}


def _unreadable_message(kind: str, data: Any) -> str | None:
    """Why a ``message_new``/``message_edit`` object cannot be read, or ``None``.

    A Callback server left on API 5.80 or older sends ``user_id`` and ``body`` instead of
    ``from_id``, ``peer_id`` and ``text`` (docs/channels/vk.md): refused, VK would resend it
    forever, so it is answered "ok" and counted. So is any other object the model refuses.
    """
    if isinstance(data, dict) and "peer_id" not in data and ("user_id" in data or "body" in data):
        return f"old_api_version:{kind}"
    try:
        _message(kind, data)
    except ValidationFailedError:
        return f"unreadable:{kind}"
    return None


def _skip_reason(message: VkMessage) -> str | None:
    """Why a message is not a customer's message, or ``None`` when it is one."""
    if message.out:
        return "own_message"
    if message.from_id < 0:
        return "community_sender"  # another community (a bot) writing in a group chat
    return None


def _pick_content(message: VkMessage) -> tuple[int | None, Content] | None:
    """The content and the index of the attachment it came from (``None`` for geo or text).

    A VK message holds up to ten attachments and our content holds one: the first supported
    attachment wins and carries the text as its caption; the others go to ``extras``. Then
    geo, then the text alone.
    """
    caption = message.text or None
    for index, attachment in enumerate(message.attachments):
        content = _attachment_content(attachment, caption)
        if content is not None:
            return index, content
    if message.geo is not None:
        return None, _location(message.geo)
    if message.text:
        return None, TextContent(text=message.text)
    return None


def _attachment_content(attachment: VkAttachment, caption: str | None) -> Content | None:
    ref = _attachment_ref(attachment)
    if ref is None:
        return None
    if attachment.type == "photo":
        return ImageContent(file=ref, caption=caption)
    if attachment.type == "doc":
        return FileContent(file=ref, caption=caption)
    if attachment.type == "audio_message":
        return AudioContent(file=ref, caption=caption, is_voice=True)
    return StickerContent(file=ref)


def _attachment_ref(attachment: VkAttachment) -> FileRef | None:
    """The file of a supported attachment; ``None`` for kinds we do not carry."""
    media = {
        "photo": attachment.photo,
        "doc": attachment.doc,
        "audio_message": attachment.audio_message,
        "sticker": attachment.sticker,
    }.get(attachment.type)
    return media.ref() if media is not None else None


def _location(geo: VkGeo) -> LocationContent:
    place = geo.place
    return LocationContent(
        latitude=geo.coordinates.latitude,
        longitude=geo.coordinates.longitude,
        title=place.title if place else None,
        address=place.address if place else None,
    )


def _customer(from_id: int) -> Customer:
    # Callbacks carry no names; a portal that wants them calls users.get.
    return Customer(channel_user_id=str(from_id), profile_url=f"https://vk.com/id{from_id}")


def _peer_type(peer_id: int) -> str:
    if peer_id >= CHAT_PEER_OFFSET:
        return "chat"
    return "community" if peer_id < 0 else "user"


def _extras(
    message: VkMessage, picked: tuple[int | None, Content], client_info: VkClientInfo | None
) -> dict[str, str]:
    index, content = picked
    extras = {"peer_type": _peer_type(message.peer_id)}
    if client_info is not None and client_info.lang_id is not None:
        extras["lang_id"] = str(client_info.lang_id)
    if message.payload is not None:
        extras["payload"] = message.payload
    if message.text and isinstance(content, StickerContent | LocationContent):
        extras["text"] = message.text  # the content has no caption to carry it
    if index is not None:
        extras.update(_chosen_attachment_extras(message.attachments[index]))
    for other, attachment in enumerate(message.attachments):
        if other != index:
            extras.update(_other_attachment_extras(other, attachment))
    return extras


def _chosen_attachment_extras(attachment: VkAttachment) -> dict[str, str]:
    """What the chosen attachment says beyond its universal content."""
    extras: dict[str, str] = {}
    if attachment.doc is not None and attachment.doc.ext:
        extras["file_ext"] = attachment.doc.ext
    if attachment.sticker is not None and attachment.sticker.product_id is not None:
        extras["sticker_product_id"] = str(attachment.sticker.product_id)
    voice = attachment.audio_message
    if voice is not None and voice.link_mp3 and voice.link_ogg:
        extras["voice_mp3_url"] = voice.link_mp3
    if voice is not None and voice.transcript:
        extras["transcript"] = voice.transcript
    return extras


def _other_attachment_extras(index: int, attachment: VkAttachment) -> dict[str, str]:
    """``attachment.<i>`` (its type) and ``attachment.<i>.url`` when VK gave a URL."""
    extras = {f"attachment.{index}": attachment.type}
    ref = _attachment_ref(attachment)
    if ref is not None and ref.url:
        extras[f"attachment.{index}.url"] = ref.url
    return extras
