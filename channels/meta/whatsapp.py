"""WhatsApp Cloud API: ``whatsapp_business_account`` webhooks in, ``/{phone_number_id}/messages``
out.

Wire format, ids and quirks: docs/channels/whatsapp.md. One connector is one business phone
number (``phone_number_id``); a dialog is one customer (``wa_id``, or the business-scoped
``user_id`` of a customer known by username only). Messages are de-duplicated on their
``wamid`` (Meta redelivers for days; one POST can even carry the same one twice). Replies
are free-form only within 24 hours of the customer's last message, which the engine
enforces (``reply_window_s``); after it a connector with an ``outside_window_template``
sends the reply as that template message (``send_outside_window``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, Field

from channels.base import Capabilities, Credentials, MediaSource, RawRequest, WebhookParse
from channels.keyboards import reply_buttons
from channels.meta.app_webhook import by_phone_number
from channels.meta.channel import MetaChannel
from channels.meta.connect_models import WhatsAppConnect
from channels.meta.credentials import ACCOUNT_ID_PATTERN, MetaAppCredentials
from channels.meta.envelope import MetaEntry, read_event, read_notification
from channels.meta.events import channel_event
from channels.meta.graph_calls import graph_call, graph_post
from channels.meta.messaging import EntryReading
from channels.meta.setup import SetupPlan
from channels.meta.whatsapp_buttons import interactive_buttons
from channels.meta.whatsapp_templates import WhatsAppTemplate, template_message
from channels.meta.whatsapp_types import (
    WaError,
    WaMedia,
    WaMessage,
    WaSharedContact,
    WaStatus,
    WaValue,
)
from channels.partial_sends import ResumeMemory
from channels.render import Part, TextPart, render
from channels.text_split import code_points
from engine.buttons.press import BUTTON_PAYLOAD_EXTRA
from engine.delivery.send_rates import Rate, SendRate
from engine.errors import PermanentSendError, ProviderSetupError
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
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
    OutboundText,
    ReplyRequest,
    Route,
    SentReceipt,
    StickerContent,
    TextContent,
    VideoContent,
)

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
WINDOW_S = 24 * 3600.0
RESUME_MEMORY = 1024
_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_STATUS_KINDS: dict[str, ChannelEventKind] = {
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


class WhatsAppCredentials(MetaAppCredentials):
    """One business phone number of a WhatsApp Business Account."""

    phone_number_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The number's id.")
    access_token: str = Field(
        min_length=1,
        repr=False,
        description="A system-user or business token with whatsapp_business_messaging.",
    )
    waba_id: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="The WhatsApp Business Account id (for subscribing the app at connect).",
    )
    outside_window_template: WhatsAppTemplate | None = Field(
        default=None,
        description="The approved template a reply goes as after the 24-hour window closed "
        "(name, language, how the operator's text fills its parameters); none: such a reply "
        "is refused (409 window_closed).",
    )


def order_key(timestamp_s: int, wamid: str) -> int:
    """A dialog's order: WhatsApp's second, ties broken by 16 bits of the ``wamid``'s CRC.

    WhatsApp gives only seconds; two messages in one second keep a deterministic order
    (the same on every redelivery), not necessarily the customer's.
    """
    return (timestamp_s << 16) | (zlib.crc32(wamid.encode()) & 0xFFFF)


class WhatsAppChannel(MetaChannel):
    """A WhatsApp Cloud API business number."""

    name: ClassVar[str] = "whatsapp"
    credentials_model: ClassVar[type[Credentials]] = WhatsAppCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_CHARS, max_caption_chars=MAX_CAPTION_CHARS, markup="whatsapp"
    )
    reply_window_s: ClassVar[float | None] = WINDOW_S
    # 80 messages a second per number; to one customer about one every 6 s after a short
    # burst, Meta's pair rate limit (docs/channels/whatsapp.md, "Send").
    send_rate: ClassVar[SendRate] = SendRate(
        per_connector=Rate(per_s=80, burst=80), per_chat=Rate(per_s=1 / 6, burst=5)
    )
    connect_model: ClassVar[type[BaseModel] | None] = WhatsAppConnect

    credentials: WhatsAppCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        self._resume = ResumeMemory(RESUME_MEMORY)

    # --- inbound

    @classmethod
    def entry_parts(cls, entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
        return by_phone_number(entry)

    @property
    def routing_ids(self) -> frozenset[str]:
        return frozenset({self.credentials.phone_number_id})

    @classmethod
    def setup_plan(cls, credentials: MetaAppCredentials) -> SetupPlan:
        """The app subscribes the business account (WhatsApp has no per-number fields)."""
        creds = credentials
        assert isinstance(creds, WhatsAppCredentials)
        if creds.waba_id is None:
            raise ProviderSetupError(
                "waba_id is needed to subscribe the app to the business account"
            )
        return SetupPlan(
            app_object="whatsapp_business_account",
            app_fields=("messages",),
            node=creds.waba_id,
            token=creds.access_token,
            node_fields=(),
            scopes=("whatsapp_business_messaging", "whatsapp_business_management"),
        )

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        notification, _ = read_notification(request.body, "whatsapp_business_account")
        reading = EntryReading()
        for entry in notification.entry:
            self._read_entry(entry, received_at, reading)
        return WebhookParse(
            messages=tuple(reading.messages),
            events=tuple(reading.events),
            ignored=tuple(reading.ignored),
        )

    def _read_entry(self, entry: MetaEntry, received_at: float, into: EntryReading) -> None:
        for change in entry.changes:
            if change.get("field") != "messages":
                into.ignored.append(f"field:{change.get('field')}")
                continue
            value = read_event(WaValue, change.get("value"), "value")
            if value is None:
                into.ignored.append("invalid_event:value")
                continue
            if value.metadata.phone_number_id != self.credentials.phone_number_id:
                into.ignored.append("other_account")
                continue
            for error in value.errors:
                log.warning("whatsapp system error %s: %s", error.code, error.message)
                into.ignored.append("system_error")
            for data in value.statuses:
                self._read_status(data, received_at, into)
            names = _names(value)
            for data in value.messages:
                self._read_message(data, names, received_at, into)

    def _read_status(self, data: dict[str, Any], received_at: float, into: EntryReading) -> None:
        """``delivered``, ``read`` and ``failed`` (with Meta's reason) of one of our messages;
        ``sent`` says nothing the send's answer did not."""
        status = read_event(WaStatus, data, "status")
        if status is None or status.recipient_id is None:
            into.ignored.append("invalid_event:status")
            return
        kind = _STATUS_KINDS.get(status.status)
        if kind is None:
            into.ignored.append(f"status:{status.status}")
            return
        into.events.append(
            channel_event(
                self.route,
                kind,
                customer_id=status.recipient_id,
                event_id=f"{status.id}:{status.status}",
                message_ids=(status.id,),
                reason=failure_reason(status.errors) if kind == "failed" else None,
                occurred_at=float(status.timestamp),
                received_at=received_at,
                raw=data,
            )
        )

    def _read_message(
        self,
        data: dict[str, Any],
        names: dict[str, tuple[str | None, str | None]],
        received_at: float,
        reading: EntryReading,
    ) -> None:
        into, ignored = reading.messages, reading.ignored
        message = read_event(WaMessage, data, "message")
        if message is None:
            ignored.append("invalid_event:message")
            return
        sender = message.from_ or message.from_user_id
        if sender is None:
            ignored.append("invalid_event:message")
            return
        if "group_id" in data:
            ignored.append("group_message")
            return
        if message.type == "reaction" and message.reaction is not None:
            reading.events.append(self._reaction(message, sender, data, received_at))
            return
        contents = _contents(message)
        if not contents:
            ignored.append(f"unsupported_content:{message.type}")
            return
        seen = {inbound.channel_event_id for inbound in into}
        for index, (content, extras) in enumerate(contents):
            event_id = message.id if index == 0 else f"{message.id}#{index}"
            if event_id in seen:
                ignored.append("duplicate")
                continue
            into.append(
                self._inbound(message, sender, names, content, extras, event_id, data, received_at)
            )

    def _reaction(
        self, message: WaMessage, sender: str, data: dict[str, Any], received_at: float
    ) -> ChannelEvent:
        """A reaction to a message (``emoji`` absent: removed), keyed by its own ``wamid``."""
        reaction = message.reaction
        assert reaction is not None
        return channel_event(
            self.route,
            "reaction",
            customer_id=sender,
            event_id=message.id,
            message_ids=(reaction.message_id,),
            reaction=reaction.emoji or None,
            occurred_at=float(message.timestamp),
            received_at=received_at,
            raw=data,
        )

    def _inbound(
        self,
        message: WaMessage,
        sender: str,
        names: dict[str, tuple[str | None, str | None]],
        content: Content,
        extras: dict[str, str],
        event_id: str,
        data: dict[str, Any],
        received_at: float,
    ) -> InboundMessage:
        name, username = names.get(sender, (None, None))
        phone = f"+{message.from_}" if message.from_ and message.from_.isdigit() else None
        context = message.context
        if context is not None and context.forwarded:
            extras = {**extras, "forwarded": "true"}
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, event_id),
            route=self.route,
            action="new",
            dialog_key=sender,
            customer=Customer(channel_user_id=sender, name=name, username=username, phone=phone),
            content=content,
            reply_to_channel_message_id=context.id if context is not None else None,
            channel_message_id=message.id,
            channel_event_id=event_id,
            order_key=order_key(message.timestamp, event_id),
            sent_at=float(message.timestamp),
            received_at=received_at,
            extras=extras,
            raw=data,
            address=_address_of(self.credentials.phone_number_id, sender),
        )

    # --- customers' media (docs/channels/media.md)

    async def media_source(self, session: aiohttp.ClientSession, file_id: str) -> MediaSource:
        """``GET {graph}/{media-id}`` names a URL valid five minutes, which is fetched with
        the same token (docs/channels/whatsapp.md, "Media"). Only a numeric id is asked for:
        a portal's ``file_id`` must not steer the engine's token to another Graph node."""
        if not file_id.isdigit() or not file_id.isascii():
            raise PermanentSendError(f"whatsapp media: {file_id!r} is not a media id")
        creds = self.credentials
        answer = await graph_call(
            session,
            "GET",
            f"{creds.graph_api_url}/{file_id}",
            token=creds.access_token,
            what="whatsapp media",
            timeout_s=creds.request_timeout_s,
        )
        url, size, mime_type = answer.get("url"), answer.get("file_size"), answer.get("mime_type")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PermanentSendError("whatsapp media: the answer has no download URL")
        return MediaSource(
            url=url,
            headers={"Authorization": f"Bearer {creds.access_token}"},
            mime_type=mime_type if isinstance(mime_type, str) else None,
            size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
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
        """Each part in order; the first quotes ``reply_to_channel_message_id`` if given.
        The Cloud API has no idempotency key, so ``idempotent_sends`` stays False."""
        messages = render_messages(request)
        if request.reply_to_channel_message_id is not None:
            messages[0]["context"] = {"message_id": request.reply_to_channel_message_id}
        address = _recipient(target)
        number = _number(target, self.credentials)

        async def send_part(index: int) -> str:
            return await self._call(session, number, {**address, **messages[index]})

        return await self._resume.send(target, request, len(messages), send_part)

    def outside_window_form(self, dialog_key: str) -> str | None:
        """``template`` when the connector configures ``outside_window_template``."""
        return "template" if self.credentials.outside_window_template is not None else None

    async def send_outside_window(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        """The reply as the connector's template message: one message, nothing split."""
        template = self.credentials.outside_window_template
        if template is None:  # the template was removed since the reply was accepted
            raise PermanentSendError(
                "whatsapp: the 24-hour window closed and the connector has no "
                "outside_window_template any more"
            )
        body = {**_recipient(target), **template_message(template, request)}
        wamid = await self._call(session, _number(target, self.credentials), body)
        return SentReceipt(
            channel_message_ids=(wamid,),
            form="template",
            template=f"{template.name} ({template.language})",
        )

    async def _call(
        self, session: aiohttp.ClientSession, phone_number_id: str, body: dict[str, Any]
    ) -> str:
        creds = self.credentials
        answer = await graph_post(
            session,
            f"{creds.graph_api_url}/{phone_number_id}/messages",
            token=creds.access_token,
            body=body,
            what="whatsapp send",
            timeout_s=creds.request_timeout_s,
        )
        sent = answer.get("messages")
        first = sent[0] if isinstance(sent, list) and sent else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            raise PermanentSendError("whatsapp send: answer without a message id")
        return wamid


def _address_of(phone_number_id: str, sender: str) -> dict[str, str]:
    """What a reply to ``sender`` needs, kept with the dialog (docs/channels/contract.md,
    "Addressing"): the number they wrote to, and a phone-number ``wa_id`` as ``to`` or a
    username customer's ``user_id`` (``US.…``) as ``recipient`` (docs/channels/whatsapp.md,
    "Ids")."""
    key = "to" if sender.isdigit() else "recipient"
    return {"phone_number_id": phone_number_id, key: sender}


def _recipient(target: DialogTarget) -> dict[str, Any]:
    """The dialog's ``to`` or ``recipient``; for a dialog stored before addresses were
    kept, read from its key as the address would have been."""
    address = target.address
    if "to" not in address and "recipient" not in address:
        address = _address_of("", target.dialog_key)
    key = "to" if "to" in address else "recipient"
    return {"messaging_product": "whatsapp", "recipient_type": "individual", key: address[key]}


def _number(target: DialogTarget, credentials: WhatsAppCredentials) -> str:
    """The business number the customer wrote to (the connector's, for an old dialog)."""
    return target.address.get("phone_number_id") or credentials.phone_number_id


def render_messages(request: ReplyRequest) -> list[dict[str, Any]]:
    """The type-specific part of each ``/messages`` body, in order (``channels.render``:
    long texts split, a caption over 1024 characters after its media). A text's keyboard
    makes its last part an ``interactive`` reply-button message when it fits, else numbered
    options in the text."""
    keyboard = request.keyboard
    if keyboard is not None and isinstance(request.content, OutboundText):
        plain = request.model_copy(update={"keyboard": None})
        parts = _messages(plain)
        last = parts[-1]
        interactive = (
            interactive_buttons(last["text"]["body"], keyboard) if "text" in last else None
        )
        if interactive is not None:
            return [*parts[:-1], {"type": "interactive", "interactive": interactive}]
    request, _ = reply_buttons(WhatsAppChannel.name, request)  # numbered options, if any
    return _messages(request)


def _messages(request: ReplyRequest) -> list[dict[str, Any]]:
    return [_message(part) for part in render(request, WhatsAppChannel.capabilities, code_points)]


def _message(part: Part) -> dict[str, Any]:
    """A text, or media by link (or by an uploaded media id) with its caption."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": {"preview_url": False, "body": part.text}}
    kind = "image" if part.kind == "image" else "document"
    media: dict[str, Any] = (
        {"link": part.url} if part.url.startswith(("https://", "http://")) else {"id": part.url}
    )
    if part.name:
        media["filename"] = part.name
    if part.caption:
        media["caption"] = part.caption
    return {"type": kind, kind: media}


# --- normalizing a message


def failure_reason(errors: list[WaError]) -> str:
    """Meta's words for a failed status: code, title and details of each error."""
    parts = []
    for error in errors:
        details = error.error_data.get("details") if error.error_data else None
        words = ": ".join(str(w) for w in (error.title or error.message, details) if w)
        parts.append(f"{words} [code {error.code}]" if error.code is not None else words)
    return "; ".join(parts) or "failed without a reason"


def _names(value: WaValue) -> dict[str, tuple[str | None, str | None]]:
    names: dict[str, tuple[str | None, str | None]] = {}
    for contact in value.contacts:
        profile = contact.profile
        entry = (profile.name, profile.username) if profile is not None else (None, None)
        for key in (contact.wa_id, contact.user_id):
            if key:
                names[key] = entry
    return names


def _contents(message: WaMessage) -> list[tuple[Content, dict[str, str]]]:
    """The universal contents of a message (several for shared contacts), with extras."""
    kind = message.type
    if kind == "text" and message.text is not None:
        return [(TextContent(text=message.text.body), {})]
    media = getattr(message, kind, None) if kind in _MEDIA_TYPES else None
    if isinstance(media, WaMedia):
        return [(_media_content(kind, media), {})]
    if kind == "location" and message.location is not None:
        point = message.location
        location = LocationContent(
            latitude=point.latitude,
            longitude=point.longitude,
            title=point.name,
            address=point.address,
        )
        return [(location, {})]
    if kind == "contacts":
        return [(c, {}) for c in map(_contact, message.contacts) if c is not None]
    if kind == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            return [(TextContent(text=reply.title), {BUTTON_PAYLOAD_EXTRA: reply.id})]
    if kind == "button" and message.button is not None:
        extras = {BUTTON_PAYLOAD_EXTRA: message.button.payload} if message.button.payload else {}
        return [(TextContent(text=message.button.text), extras)]
    return []


def _media_content(kind: str, media: WaMedia) -> Content:
    """Media by id: fetched with the access token (docs/channels/whatsapp.md, "Messages")."""
    file = FileRef(file_id=media.id, name=media.filename, mime_type=media.mime_type)
    if kind == "image":
        return ImageContent(file=file, caption=media.caption)
    if kind == "video":
        return VideoContent(file=file, caption=media.caption)
    if kind == "audio":
        return AudioContent(file=file, is_voice=media.voice)
    if kind == "sticker":
        return StickerContent(file=file)
    return FileContent(file=file, caption=media.caption)


def _contact(shared: WaSharedContact) -> ContactContent | None:
    phone = next((p for p in shared.phones if p.phone), None)
    if phone is None or phone.phone is None:
        return None
    name = shared.name
    return ContactContent(
        phone=phone.phone,
        first_name=(name.first_name or name.formatted_name) if name is not None else None,
        last_name=name.last_name if name is not None else None,
        channel_user_id=phone.wa_id,
    )
