"""The universal model: what flows through the engine, whatever channel it came from.

Everything here is frozen. Content is a union tagged by ``kind``. External ids are strings
(Telegram chat ids need 52 bits, Viber tokens 64, Meta ids exceed 2**53). Provider-specific
facts that have no universal field go to ``extras``; the untouched provider payload goes to
``raw`` for audit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from engine.buttons.keyboard import Keyboard
from engine.config import ID_PATTERN
from engine.frozen import Frozen as Frozen  # re-exported: the base of every model here


class Customer(Frozen):
    """Who wrote, as the channel identifies them."""

    channel_user_id: str = Field(description="The sender's id in the channel, as a string.")
    name: str | None = Field(default=None, description="Display name, if the channel sends one.")
    username: str | None = Field(default=None, description="Handle without '@', if any.")
    profile_url: str | None = Field(default=None, description="Link to the public profile.")
    language: str | None = Field(default=None, description="IETF language tag, if known.")
    phone: str | None = Field(default=None, description="Phone number, if the channel shares it.")
    email: str | None = Field(
        default=None, description="E-mail address, if the customer left one (the widget's form)."
    )


class FileRef(Frozen):
    """A file the channel holds; ``file_id`` is what the channel needs to fetch or resend it."""

    file_id: str = Field(description="The channel's own file id (or URL when that is the id).")
    url: str | None = Field(default=None, description="Direct URL, when the channel gives one.")
    name: str | None = Field(default=None, description="Original file name.")
    mime_type: str | None = None
    size_bytes: int | None = None
    width_px: int | None = None
    height_px: int | None = None
    duration_s: float | None = None


class TextContent(Frozen):
    kind: Literal["text"] = "text"
    text: str


class ImageContent(Frozen):
    kind: Literal["image"] = "image"
    file: FileRef
    caption: str | None = None


class FileContent(Frozen):
    kind: Literal["file"] = "file"
    file: FileRef
    caption: str | None = None


class AudioContent(Frozen):
    kind: Literal["audio"] = "audio"
    file: FileRef
    caption: str | None = None
    is_voice: bool = Field(default=False, description="A voice note rather than a music file.")


class VideoContent(Frozen):
    kind: Literal["video"] = "video"
    file: FileRef
    caption: str | None = None


class StickerContent(Frozen):
    kind: Literal["sticker"] = "sticker"
    file: FileRef
    emoji: str | None = None


class LocationContent(Frozen):
    kind: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    title: str | None = None
    address: str | None = None


class ContactContent(Frozen):
    kind: Literal["contact"] = "contact"
    phone: str
    first_name: str | None = None
    last_name: str | None = None
    channel_user_id: str | None = Field(default=None, description="The contact's channel id.")


Content = Annotated[
    TextContent
    | ImageContent
    | FileContent
    | AudioContent
    | VideoContent
    | StickerContent
    | LocationContent
    | ContactContent,
    Field(discriminator="kind"),
]

InboundAction = Literal["new", "edit", "delete"]
DeliveryKind = Literal["guaranteed", "best_effort"]


class Route(Frozen):
    """Where a connector's traffic belongs: set by the engine from the connector's config."""

    portal_id: str
    line_id: str
    connector_id: str
    channel: str


class InboundMessage(Frozen):
    """One customer event, normalized: a new message, an edit, or a deletion.

    ``dialog_key`` identifies the conversation inside the connector (Telegram ``chat.id``).
    ``channel_event_id`` is the channel's de-duplication key (Telegram ``update_id``).
    ``order_key`` is the channel's own sequence, used to keep a dialog in the order the
    customer wrote even when webhooks arrive over parallel connections.
    """

    id: str = Field(description="Engine-wide unique event id (stable across redelivery).")
    route: Route
    action: InboundAction = "new"
    dialog_key: str
    customer: Customer
    content: Content | None = Field(default=None, description="None only for deletions.")
    reply_to_channel_message_id: str | None = None
    channel_message_id: str = Field(description="The message's id in the channel's dialog.")
    channel_event_id: str = Field(description="The channel's de-duplication key.")
    order_key: int = Field(description="The channel's own ordering within a dialog.")
    sent_at: float = Field(description="When the customer sent it, unix seconds (channel time).")
    edited_at: float | None = None
    received_at: float = Field(description="When the engine received it, unix seconds.")
    delivery: DeliveryKind = "guaranteed"
    extras: dict[str, str] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict, description="Provider payload, for audit.")
    address: dict[str, str] = Field(
        default_factory=dict,
        exclude=True,
        description="What a reply in this dialog needs (a WhatsApp phone_number_id, the "
        "comment to answer, a page-scoped id): a new message's is stored with its dialog "
        "and handed to the channel on DialogTarget.address (docs/channels/contract.md, "
        '"Addressing"). Travels with the stored record, not in what the portal receives.',
    )


ChannelEventKind = Literal[
    "delivered",
    "read",
    "failed",
    "reaction",
    "typing",
    "blocked",
    "unblocked",
    "subscribed",
    "unsubscribed",
    "opted_in",
    "sent_elsewhere",
    "hidden",
    "unhidden",
    "standby",
]
"""What a provider's event that is not a customer message says (docs/channels/contract.md)."""

RECEIPT_KINDS: frozenset[str] = frozenset({"delivered", "read", "failed"})
"""The kinds about our own outbound messages: they settle a sent reply's status."""


class ChannelEvent(Frozen):
    """A provider's event that is not a customer message: a receipt or failure of one of our
    messages, a reaction, typing, the customer blocking or unblocking the bot, subscribing,
    unsubscribing or opting in, an answer sent elsewhere, a comment hidden or shown, a
    message written while another app owns the conversation. It never opens a dialog or
    counts as a customer message; it joins the stream of the conversation's dialog as
    ``channel.event`` (docs/channels/contract.md, "Events that are not messages")."""

    id: str = Field(description="Engine-wide unique event id (stable across redelivery).")
    route: Route
    kind: ChannelEventKind = Field(description="What happened (docs/channels/contract.md).")
    dialog_key: str = Field(description="The conversation inside the connector.")
    customer_id: str = Field(description="The customer's id in the channel.")
    channel_event_id: str = Field(description="The channel's de-duplication key.")
    channel_message_ids: tuple[str, ...] = Field(
        default=(),
        description="The messages it is about: ours for delivered/read/failed (the ids "
        "reply.sent listed), the one reacted to for a reaction; empty when the provider "
        "names none (a watermark receipt).",
    )
    watermark: float | None = Field(
        default=None,
        description="delivered/read: every message of ours sent at or before this time "
        "(unix seconds) is covered, when the provider says so instead of naming ids.",
    )
    reaction: str | None = Field(
        default=None, description="reaction: the emoji (or the provider's name); null: removed."
    )
    reason: str | None = Field(
        default=None, description="failed, blocked, unsubscribed: the provider's own words."
    )
    occurred_at: float = Field(description="When it happened, unix seconds (channel time).")
    received_at: float = Field(description="When the engine received it, unix seconds.")
    opens_window: bool = Field(
        default=False,
        description="The provider counts it as the customer writing: it opens the messaging "
        "window again like a message (a Messenger reaction; docs/channels/contract.md).",
    )
    extras: dict[str, str] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict, description="Provider payload, for audit.")


class OutboundText(Frozen):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=100_000)
    markup: Literal["bbcode", "plain"] = Field(
        default="bbcode",
        description="bbcode: [b] [i] [s] [u] [url=...] [br] and plain URLs are converted to "
        "what the channel shows (docs/channels/markup.md); plain: the text as it is.",
    )


class OutboundImage(Frozen):
    kind: Literal["image"] = "image"
    url: str = Field(description="An https URL or a channel file id the channel can fetch.")
    caption: str | None = None


class OutboundFile(Frozen):
    kind: Literal["file"] = "file"
    url: str = Field(description="An https URL or a channel file id the channel can fetch.")
    name: str | None = None
    caption: str | None = None


OutboundContent = Annotated[
    OutboundText | OutboundImage | OutboundFile, Field(discriminator="kind")
]


AVATAR_URL_MAX = 1000
"""The longest avatar URL taken (docs/routing.md, "Persona")."""


_NOT_IN_URLS = frozenset('"<>\\^`{|}')
"""Characters RFC 3986 does not allow unencoded in a URL."""


def _avatar_url(url: str) -> str:
    """An avatar the customer's browser fetches: ``https://`` with a host, no credentials,
    only characters a URL may hold (it becomes an ``<img src>``, never markup)."""
    if not url.startswith("https://"):
        raise ValueError("an avatar URL must start with https://")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch in _NOT_IN_URLS for ch in url):
        raise ValueError(
            'an avatar URL must not contain spaces, control characters or any of "<>\\^`{|} '
            "(percent-encode them)"
        )
    authority = url[len("https://") :].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not authority:
        raise ValueError("an avatar URL needs a host after https://")
    if "@" in authority:
        raise ValueError("an avatar URL must not carry a user name or password")
    return url


AvatarUrl = Annotated[
    str, Field(min_length=9, max_length=AVATAR_URL_MAX), AfterValidator(_avatar_url)
]
"""An avatar picture's address: an operator's profile, a line's persona."""


class ReplySender(Frozen):
    """Who the customer sees sending a reply, for a channel that shows a sender; set by the
    engine from the line's persona (docs/routing.md, "Persona"), never by the portal."""

    name: str | None = Field(
        default=None, max_length=100, description="The operator's or the line's name."
    )
    avatar_url: AvatarUrl | None = Field(default=None, description="An https picture.")


class ReplyRequest(Frozen):
    """What a portal POSTs to answer in a dialog."""

    content: OutboundContent
    reply_to_channel_message_id: str | None = None
    client_id: str | None = Field(
        default=None, max_length=200, description="The portal's own id, echoed in the outcome."
    )
    operator_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="The replying operator; the assigned one's first reply answers the dialog.",
    )
    keyboard: Keyboard | None = Field(
        default=None,
        description="Buttons under a text of the line or its bot (docs/line-messages.md, "
        '"Buttons"); each channel shows them its own way, or as numbered options.',
    )
    sender: ReplySender | None = Field(
        default=None,
        description="Set by the engine where the channel shows a sender: the name and avatar "
        "the line's persona shows beside the reply (elsewhere the name is before the text).",
    )
    outside_window_form: str | None = Field(
        default=None,
        description="Set by the engine when the dialog's messaging window had closed as the "
        "reply was accepted: the form the channel carries it in instead (WhatsApp: "
        "`template`), through its send_outside_window (docs/channels/contract.md).",
    )


class DialogTarget(Frozen):
    """Everything a channel needs to address a customer in one dialog."""

    dialog_id: str
    route: Route
    dialog_key: str
    customer_id: str
    address: dict[str, str] = Field(
        default_factory=dict,
        description="The dialog's addressing, as its customer's last message gave it "
        "(InboundMessage.address); empty for a dialog stored before the engine kept it: "
        "the channel then derives what it needs from dialog_key and its credentials.",
    )

    def __hash__(self) -> int:
        # The address is a dict (unhashable); equal targets still hash equal without it.
        return hash((self.dialog_id, self.route, self.dialog_key, self.customer_id))


class SentReceipt(Frozen):
    """What the channel answered for one outbound message (several parts if it was split)."""

    channel_message_ids: tuple[str, ...]
    form: str = "message"
    """How it went: ``message`` (free-form) or the channel's form for outside the window
    (``template``)."""
    template: str | None = None
    """The template it went as (WhatsApp: its name), for ``form`` ``template``."""
