"""What Messenger and Instagram Messaging send in ``entry[].messaging[]``, as far as the
channels read it (docs/channels/facebook.md, "Messaging events"; docs/channels/instagram.md).

One event carries one of ``message``, ``postback``, ``reaction``, ``delivery``, ``read``,
``message_edit`` (and kinds the engine does not read: optins, referrals, handovers). Unknown
fields are ignored, since Meta adds them over time.
"""

from __future__ import annotations

from pydantic import Field

from channels.meta.envelope import MetaId, MetaModel


class Party(MetaModel):
    """``sender`` or ``recipient``: a page/account id or a page-scoped user id (PSID/IGSID)."""

    id: MetaId


class Coordinates(MetaModel):
    lat: float
    long: float


class AttachmentPayload(MetaModel):
    url: str | None = None
    title: str | None = None
    sticker_id: MetaId | None = None
    coordinates: Coordinates | None = None
    reel_video_id: MetaId | None = None


class Attachment(MetaModel):
    """``image``, ``video``, ``audio``, ``file``, ``location``, ``fallback`` (a shared link),
    Instagram's ``like_heart``, ``story_mention``, ``share``, ``reel``, ``ig_reel``, ..."""

    type: str
    payload: AttachmentPayload | None = None
    title: str | None = None
    url: str | None = None


class QuickReply(MetaModel):
    payload: str


class StoryReference(MetaModel):
    id: MetaId | None = None
    url: str | None = None


class ReplyTo(MetaModel):
    mid: str | None = None
    story: StoryReference | None = None


class Message(MetaModel):
    mid: str = Field(min_length=1)
    text: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    quick_reply: QuickReply | None = None
    reply_to: ReplyTo | None = None
    is_echo: bool = False
    app_id: MetaId | None = None
    metadata: str | None = None
    is_deleted: bool = False
    is_unsupported: bool = False


class Postback(MetaModel):
    title: str | None = None
    payload: str | None = None
    mid: str | None = None


class Reaction(MetaModel):
    mid: str | None = None
    action: str | None = None
    reaction: str | None = None
    emoji: str | None = None


class Delivery(MetaModel):
    mids: list[str] = Field(default_factory=list)
    watermark: int | None = None


class Read(MetaModel):
    watermark: int | None = None
    mid: str | None = None


class MessageEdit(MetaModel):
    mid: str = Field(min_length=1)
    text: str | None = None
    num_edit: int = Field(default=0, ge=0)


class MessagingEvent(MetaModel):
    sender: Party
    recipient: Party
    timestamp: int = Field(strict=True, ge=0, description="Epoch milliseconds.")
    message: Message | None = None
    postback: Postback | None = None
    reaction: Reaction | None = None
    delivery: Delivery | None = None
    read: Read | None = None
    message_edit: MessageEdit | None = None
