"""Reading ``entry[].messaging[]``, shared by Facebook Messenger and Instagram direct messages.

Both products post the same event shapes (docs/channels/facebook.md, "Messaging events";
docs/channels/instagram.md, "Direct messages"). A customer's message, a postback (a button
press) and an edit become ``InboundMessage``s; the business's own echoes, receipts and
reactions create no customer message and are returned as ignore reasons, each event on its
own (a batch shares work, never failure).

Ids: a message is de-duplicated on its ``mid``. A message with several attachments becomes
one ``InboundMessage`` per attachment, the first keyed by the ``mid`` and the others by
``mid#<index>``; an edit by ``mid#edit<num_edit>``, an unsend by ``mid#deleted``; all keep
the ``mid`` as their ``channel_message_id``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from channels.meta.envelope import MetaEntry, read_event
from channels.meta.events import channel_event
from channels.meta.messaging_types import Attachment, Message, MessagingEvent
from engine.buttons.press import BUTTON_PAYLOAD_EXTRA
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
    ChannelEvent,
    ChannelEventKind,
    Content,
    Customer,
    FileContent,
    FileRef,
    ImageContent,
    InboundAction,
    InboundMessage,
    LocationContent,
    Route,
    StickerContent,
    TextContent,
    VideoContent,
)

THUMBS_UP_STICKER_ID = "369239263222822"
"""Messenger's "like" sticker: read as a 👍, so it answers a rating like a typed one."""
_MEDIA_SHARES = frozenset({"share", "story_mention", "reel", "ig_reel", "post", "ig_post"})


@dataclass
class EntryReading:
    """What the events of one or more entries came to."""

    messages: list[InboundMessage] = field(default_factory=list)
    events: list[ChannelEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def order_key(timestamp_ms: int, mid: str) -> int:
    """A dialog's order: Meta's millisecond timestamp (messages are sent in order per
    conversation), ties broken by 10 bits of the ``mid``'s CRC, so a redelivery orders the
    same way. Far inside int64 for any timestamp of this millennium."""
    return (timestamp_ms << 10) | (zlib.crc32(mid.encode()) & 0x3FF)


class MessagingReader:
    """Reads the messaging events of one connector's account (a page or an IG account).

    ``app_id`` is our app's id: an echo that carries it is our own send (ignored, ``echo``);
    an echo without it (or with another app's) is a person answering from the page's inbox
    or the Instagram app, told to the operator as a ``sent_elsewhere`` event
    (docs/channels/facebook.md, "Echoes"); Instagram's never carry one, so the engine drops
    a ``sent_elsewhere`` that names a message it sent itself.
    """

    def __init__(self, route: Route, account_id: str, app_id: str | None) -> None:
        self._route = route
        self._account_id = account_id
        self._app_id = app_id

    def read(self, entries: list[MetaEntry], received_at: float) -> EntryReading:
        reading = EntryReading()
        for entry in entries:
            if entry.id != self._account_id:
                reading.ignored.append("other_account")
                continue
            for data in entry.messaging:
                self._read_event(data, received_at, reading)
            for data in entry.standby:
                self._read_standby(data, received_at, reading)
        return reading

    def _read_standby(self, data: dict[str, Any], received_at: float, into: EntryReading) -> None:
        """An event of a conversation another app controls (Meta's handover protocol: the
        page inbox, another bot), posted to the engine as a secondary receiver
        (docs/channels/facebook.md, "Standby"). The customer's message or button press is
        told to the operator as a ``standby`` event, not taken as a message: the engine does
        not own the thread, so it opens no dialog and starts no routing; it still counts for
        Meta's window. Echoes, receipts and reactions read as in ``messaging``."""
        event = read_event(MessagingEvent, data, "standby")
        if event is None:
            into.ignored.append("invalid_event:standby")
            return
        message = event.message
        if message is not None and message.is_echo:
            self._read_event(data, received_at, into)
            return
        if message is not None or event.postback is not None:
            into.events.append(self._standby(event, data, received_at))
            return
        notice = self._notice(event, data, received_at)
        if notice is None:
            known = sorted(set(data) - {"sender", "recipient", "timestamp"})
            into.ignored.append(f"standby:{known[0] if known else 'empty'}")
            return
        into.events.append(notice)

    def _standby(
        self, event: MessagingEvent, data: dict[str, Any], received_at: float
    ) -> ChannelEvent:
        """What the customer wrote (or pressed) while another app had the conversation."""
        message, postback = event.message, event.postback
        if message is not None:
            mid = message.mid
            urls = [content_url for a in message.attachments if (content_url := _url(a))]
            extras = {"text": message.text or "", "attachment_urls": "\n".join(urls)}
        else:
            assert postback is not None
            mid = postback.mid or f"postback:{event.sender.id}:{event.timestamp}"
            extras = {"text": postback.title or "", BUTTON_PAYLOAD_EXTRA: postback.payload or ""}
        return channel_event(
            self._route,
            "standby",
            customer_id=event.sender.id,
            event_id=f"{mid}:standby",
            message_ids=(mid,),
            occurred_at=event.timestamp / 1000,
            received_at=received_at,
            extras={key: value for key, value in extras.items() if value},
            opens_window=True,
            raw=data,
        )

    def _read_event(self, data: dict[str, Any], received_at: float, into: EntryReading) -> None:
        event = read_event(MessagingEvent, data, "messaging")
        if event is None:
            into.ignored.append("invalid_event:messaging")
            return
        if event.message is not None:
            if self._sent_elsewhere(event.message):
                into.events.append(self._echo(event, event.message, data, received_at))
                return
            reason = self._message_skip_reason(event.message)
            if reason is not None:
                into.ignored.append(reason)
                return
            self._read_message(event, event.message, data, received_at, into)
            return
        if event.postback is not None:
            into.messages.append(self._postback(event, data, received_at))
            return
        if event.message_edit is not None:
            into.messages.append(self._edit(event, data, received_at))
            return
        notice = self._notice(event, data, received_at)
        if notice is not None:
            into.events.append(notice)
            return
        known = sorted(set(data) - {"sender", "recipient", "timestamp"})
        into.ignored.append(f"unsupported_event:{known[0] if known else 'empty'}")

    def _notice(
        self, event: MessagingEvent, data: dict[str, Any], received_at: float
    ) -> ChannelEvent | None:
        """A receipt, a reaction or an opt-in as a channel event; ``None`` for other kinds.

        Receipts name our messages by ``mids`` (Instagram's ``read.mid``) or only by a
        ``watermark``: every message sent before it (docs/channels/facebook.md, "Messaging events").
        """
        customer = event.sender.id
        common: dict[str, Any] = {
            "customer_id": customer,
            "occurred_at": event.timestamp / 1000,
            "received_at": received_at,
            "raw": data,
        }
        if event.delivery is not None or event.read is not None:
            receipt = event.delivery or event.read
            assert receipt is not None
            kind: ChannelEventKind = "delivered" if event.delivery is not None else "read"
            mids = tuple(event.delivery.mids) if event.delivery is not None else ()
            if event.read is not None and event.read.mid is not None:
                mids = (event.read.mid,)
            watermark = receipt.watermark / 1000 if receipt.watermark is not None else None
            mark = receipt.watermark if receipt.watermark is not None else ",".join(mids)
            return channel_event(
                self._route,
                kind,
                event_id=f"{kind}:{customer}:{mark}",
                message_ids=mids,
                watermark=watermark,
                **common,
            )
        if event.reaction is not None:
            # Meta counts a reaction as the customer acting: it opens the 24-hour window
            # again (docs/channels/facebook.md, "Windows"); taking one back does not.
            reaction = event.reaction
            removed = reaction.action == "unreact"
            shown = None if removed else (reaction.emoji or reaction.reaction)
            extras = {"reaction_name": reaction.reaction} if reaction.reaction else {}
            return channel_event(
                self._route,
                "reaction",
                event_id=f"reaction:{customer}:{event.timestamp}",
                message_ids=(reaction.mid,) if reaction.mid else (),
                reaction=shown,
                extras=extras,
                opens_window=not removed,
                **common,
            )
        optin = data.get("optin")
        if isinstance(optin, dict):
            extras = {k: str(v) for k, v in optin.items() if isinstance(v, str | int)}
            return channel_event(
                self._route,
                "opted_in",
                event_id=f"optin:{customer}:{event.timestamp}",
                extras=extras,
                **common,
            )
        return None

    def _sent_elsewhere(self, message: Message) -> bool:
        """An echo not sent by our app: a person in the page's inbox or the Instagram app.
        Instagram's echoes name no app: the engine drops those of the messages it sent
        itself when it routes them (docs/channels/instagram.md, "Echoes")."""
        if not message.is_echo:
            return False
        return self._app_id is None or message.app_id != self._app_id

    def _echo(
        self, event: MessagingEvent, message: Message, data: dict[str, Any], received_at: float
    ) -> ChannelEvent:
        """What the person in the page's inbox wrote, for the operator (``sent_elsewhere``);
        an echo's recipient is the customer."""
        urls = [content_url for a in message.attachments if (content_url := _url(a))]
        extras = {"text": message.text or "", "attachment_urls": "\n".join(urls)}
        if message.app_id is not None:
            extras["app_id"] = message.app_id
        return channel_event(
            self._route,
            "sent_elsewhere",
            customer_id=event.recipient.id,
            event_id=f"{message.mid}:sent_elsewhere",
            message_ids=(message.mid,),
            occurred_at=event.timestamp / 1000,
            received_at=received_at,
            extras={key: value for key, value in extras.items() if value},
            raw=data,
        )

    def _message_skip_reason(self, message: Message) -> str | None:
        if message.is_echo:
            return "echo"
        if message.is_unsupported:
            return "unsupported_content:unsupported"
        return None

    def _read_message(
        self,
        event: MessagingEvent,
        message: Message,
        data: dict[str, Any],
        received_at: float,
        into: EntryReading,
    ) -> None:
        if message.is_deleted:
            into.messages.append(
                self._inbound(event, "delete", None, f"{message.mid}#deleted", data, received_at)
            )
            return
        extras = _message_extras(message)
        contents: list[tuple[Content, dict[str, str]]] = []
        if message.text:
            text_extras = dict(extras)
            if message.quick_reply is not None:
                text_extras[BUTTON_PAYLOAD_EXTRA] = message.quick_reply.payload
            contents.append((TextContent(text=message.text), text_extras))
        for attachment in message.attachments:
            content = attachment_content(attachment)
            if content is None:
                into.ignored.append(f"unsupported_content:{attachment.type}")
            else:
                contents.append((content, {**extras, "attachment_type": attachment.type}))
        if not contents and not message.attachments:
            into.ignored.append("unsupported_content:empty")
        reply_to = message.reply_to.mid if message.reply_to is not None else None
        for index, (content, content_extras) in enumerate(contents):
            event_id = message.mid if index == 0 else f"{message.mid}#{index}"
            inbound = self._inbound(event, "new", content, event_id, data, received_at)
            into.messages.append(
                inbound.model_copy(
                    update={"extras": content_extras, "reply_to_channel_message_id": reply_to}
                )
            )

    def _postback(
        self, event: MessagingEvent, data: dict[str, Any], received_at: float
    ) -> InboundMessage:
        """A button press: the customer's message, the button's title as its text."""
        postback = event.postback
        assert postback is not None
        mid = postback.mid or f"postback:{event.sender.id}:{event.timestamp}"
        text = postback.title or postback.payload or ""
        content = TextContent(text=text) if text else None
        inbound = self._inbound(event, "new", content, mid, data, received_at)
        extras = {BUTTON_PAYLOAD_EXTRA: postback.payload} if postback.payload else {}
        return inbound.model_copy(update={"extras": extras})

    def _edit(
        self, event: MessagingEvent, data: dict[str, Any], received_at: float
    ) -> InboundMessage:
        edit = event.message_edit
        assert edit is not None
        content = TextContent(text=edit.text) if edit.text else None
        inbound = self._inbound(
            event, "edit", content, f"{edit.mid}#edit{edit.num_edit}", data, received_at
        )
        return inbound.model_copy(
            update={"channel_message_id": edit.mid, "edited_at": event.timestamp / 1000}
        )

    def _inbound(
        self,
        event: MessagingEvent,
        action: InboundAction,
        content: Content | None,
        event_id: str,
        data: dict[str, Any],
        received_at: float,
    ) -> InboundMessage:
        mid = event_id.split("#", 1)[0]
        return InboundMessage(
            id=inbound_event_id(self._route.connector_id, event_id),
            route=self._route,
            action=action,
            dialog_key=event.sender.id,
            customer=Customer(channel_user_id=event.sender.id),
            content=content,
            channel_message_id=mid,
            channel_event_id=event_id,
            order_key=order_key(event.timestamp, event_id),
            sent_at=event.timestamp / 1000,
            received_at=received_at,
            raw=data,
            address={"account_id": self._account_id, "recipient_id": event.sender.id},
        )


def _url(attachment: Attachment) -> str | None:
    payload = attachment.payload
    return (payload.url if payload is not None else None) or attachment.url


def attachment_content(attachment: Attachment) -> Content | None:
    """The universal content of one attachment, or ``None`` for one without anything to show."""
    payload = attachment.payload
    url = _url(attachment)
    title = (payload.title if payload is not None else None) or attachment.title
    kind = attachment.type
    if kind == "like_heart":
        return StickerContent(file=FileRef(file_id="like_heart"), emoji="❤️")
    if kind == "location" and payload is not None and payload.coordinates is not None:
        point = payload.coordinates
        return LocationContent(latitude=point.lat, longitude=point.long, title=title)
    if url is None:
        return None
    file = FileRef(file_id=url, url=url)
    if kind == "image" and payload is not None and payload.sticker_id is not None:
        sticker_id = payload.sticker_id
        emoji = "👍" if sticker_id == THUMBS_UP_STICKER_ID else None
        return StickerContent(file=FileRef(file_id=sticker_id, url=url), emoji=emoji)
    if kind == "image":
        return ImageContent(file=file)
    if kind == "video":
        return VideoContent(file=file)
    if kind == "audio":
        return AudioContent(file=file)
    if kind == "file":
        return FileContent(file=file)
    if kind == "fallback":
        return TextContent(text=f"{title}\n{url}" if title else url)
    if kind in _MEDIA_SHARES:
        return FileContent(file=file, caption=title)
    return None


def _message_extras(message: Message) -> dict[str, str]:
    extras: dict[str, str] = {}
    story = message.reply_to.story if message.reply_to is not None else None
    if story is not None:
        if story.id is not None:
            extras["reply_to_story_id"] = story.id
        if story.url is not None:
            extras["reply_to_story_url"] = story.url
    return extras
