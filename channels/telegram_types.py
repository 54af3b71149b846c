"""What Telegram sends: the Bot API's Update and Message, as far as the channel reads them.

Unknown fields are ignored, since the Bot API adds fields in every release (channels.md
section 0, rule 5). Field names follow the Bot API, except ``from``, a Python keyword.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.models import FileRef


class _Provider(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TgUser(_Provider):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class TgChat(_Provider):
    id: int
    type: str
    title: str | None = None


class TgFile(_Provider):
    """Any Telegram file object (PhotoSize, Document, Audio, Voice, Video, VideoNote,
    Animation): they share these fields, each kind sending some of them."""

    file_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    length: int | None = None  # a video note is a square of this side
    duration: int | None = None

    def ref(self, default_mime_type: str | None = None) -> FileRef:
        return FileRef(
            file_id=self.file_id,
            name=self.file_name,
            mime_type=self.mime_type or default_mime_type,
            size_bytes=self.file_size,
            width_px=self.width or self.length,
            height_px=self.height or self.length,
            duration_s=self.duration,
        )


class TgSticker(TgFile):
    emoji: str | None = None
    is_animated: bool = False
    is_video: bool = False

    def ref(self, default_mime_type: str | None = None) -> FileRef:
        if self.is_animated:
            return super().ref("application/x-tgsticker")
        return super().ref("video/webm" if self.is_video else "image/webp")


class TgLocation(_Provider):
    latitude: float
    longitude: float


class TgVenue(_Provider):
    location: TgLocation
    title: str | None = None
    address: str | None = None


class TgContact(_Provider):
    phone_number: str
    first_name: str | None = None
    last_name: str | None = None
    user_id: int | None = None


class TgMessageRef(_Provider):
    message_id: int


class TgMessage(_Provider):
    message_id: int
    from_user: TgUser | None = Field(default=None, alias="from")
    sender_chat: TgChat | None = None
    chat: TgChat
    date: int
    edit_date: int | None = None
    message_thread_id: int | None = None
    media_group_id: str | None = None
    reply_to_message: TgMessageRef | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[TgFile] | None = None
    animation: TgFile | None = None
    document: TgFile | None = None
    audio: TgFile | None = None
    voice: TgFile | None = None
    video: TgFile | None = None
    video_note: TgFile | None = None
    sticker: TgSticker | None = None
    venue: TgVenue | None = None
    location: TgLocation | None = None
    contact: TgContact | None = None


class TgUpdate(_Provider):
    update_id: int = Field(strict=True)


# Message keys that describe the envelope, not the content. The first key of a message
# outside this set names the content we do not carry (poll, dice, new_chat_members, ...).
# The last line holds legacy duplicates Telegram still sends before the current keys.
ENVELOPE_KEYS = frozenset(
    [
        "message_id",
        "from",
        "sender_chat",
        "chat",
        "date",
        "edit_date",
        "message_thread_id",
        "media_group_id",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "entities",
        "caption_entities",
        "caption",
        "link_preview_options",
        "reply_markup",
        "forward_origin",
        "is_automatic_forward",
        "is_topic_message",
        "via_bot",
        "author_signature",
        "has_protected_content",
        "is_from_offline",
        "sender_boost_count",
        "sender_business_bot",
        "business_connection_id",
        "effect_id",
        "has_media_spoiler",
        "show_caption_above_media",
        "sender_tag",
        "paid_star_count",
        "direct_messages_topic",
        "is_paid_post",
        "suggested_post_info",
        "new_chat_participant",
        "new_chat_member",
        "left_chat_participant",
    ]
)


class TgChatMember(_Provider):
    """A member's state in a chat: ``kicked`` for the bot in a private chat is a block."""

    status: str


class TgChatMemberUpdated(_Provider):
    """``my_chat_member``: the bot's own membership changed (in a private chat: the user
    blocked or unblocked the bot)."""

    chat: TgChat
    from_user: TgUser = Field(alias="from")
    date: int
    old_chat_member: TgChatMember
    new_chat_member: TgChatMember


class TgReaction(_Provider):
    """One reaction: an ``emoji``, a ``custom_emoji`` by id, or ``paid``."""

    type: str
    emoji: str | None = None
    custom_emoji_id: str | None = None


class TgMessageReactionUpdated(_Provider):
    """``message_reaction``: a user changed their reactions to a message (anonymous group
    admins react as ``actor_chat`` instead of ``user``)."""

    chat: TgChat
    message_id: int
    user: TgUser | None = None
    date: int
    new_reaction: list[TgReaction] = Field(default_factory=list)
