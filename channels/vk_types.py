"""What VK sends: the Callback API envelope and its Message, as far as the channel reads them.

Shapes follow API version 5.103 and later (channels.md section 2.3), the version set on the
Callback server, not the one of our outbound calls. Unknown fields are ignored: VK adds
attachment kinds and message fields over time (channels.md section 0, rule 5).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.models import FileRef


class _Provider(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _OwnedMedia(_Provider):
    """A media object addressed as ``<type><owner_id>_<id>[_<access_key>]``."""

    id: int
    owner_id: int
    access_key: str | None = None

    def attachment(self, kind: str) -> str:
        """The string ``messages.send`` takes in ``attachment`` to send this media again."""
        key = f"_{self.access_key}" if self.access_key else ""
        return f"{kind}{self.owner_id}_{self.id}{key}"


class VkImage(_Provider):
    """One rendition of a photo (a ``sizes`` entry) or of a sticker (an ``images`` entry)."""

    url: str
    width: int = 0
    height: int = 0


def largest(images: list[VkImage]) -> VkImage | None:
    """The widest rendition; VK lists sizes by letter, which is not an order of width."""
    return max(images, key=lambda image: image.width, default=None)


class VkPhoto(_OwnedMedia):
    sizes: list[VkImage] = Field(default_factory=list)

    def ref(self) -> FileRef:
        best = largest(self.sizes)
        return FileRef(
            file_id=self.attachment("photo"),
            url=best.url if best else None,
            width_px=best.width if best else None,
            height_px=best.height if best else None,
        )


class VkDoc(_OwnedMedia):
    title: str | None = None
    ext: str | None = None
    size: int | None = None
    url: str | None = None

    def ref(self) -> FileRef:
        return FileRef(
            file_id=self.attachment("doc"), url=self.url, name=self.title, size_bytes=self.size
        )


class VkSticker(_Provider):
    sticker_id: int
    product_id: int | None = None
    images: list[VkImage] = Field(default_factory=list)

    def ref(self) -> FileRef:
        # The id is what messages.send takes in ``sticker_id``.
        best = largest(self.images)
        return FileRef(
            file_id=str(self.sticker_id),
            url=best.url if best else None,
            width_px=best.width if best else None,
            height_px=best.height if best else None,
        )


class VkAudioMessage(_OwnedMedia):
    duration: int | None = None
    link_ogg: str | None = None
    link_mp3: str | None = None
    transcript: str | None = None

    def ref(self) -> FileRef:
        return FileRef(
            file_id=self.attachment("audio_message"),
            url=self.link_ogg or self.link_mp3,
            mime_type="audio/ogg" if self.link_ogg else "audio/mpeg" if self.link_mp3 else None,
            duration_s=self.duration,
        )


class VkAttachment(_Provider):
    """One entry of ``attachments``: ``type`` names the key holding the object."""

    type: str
    photo: VkPhoto | None = None
    doc: VkDoc | None = None
    sticker: VkSticker | None = None
    audio_message: VkAudioMessage | None = None


class VkCoordinates(_Provider):
    latitude: float
    longitude: float


class VkPlace(_Provider):
    title: str | None = None
    address: str | None = None


class VkGeo(_Provider):
    coordinates: VkCoordinates
    place: VkPlace | None = None


class VkMessageRef(_Provider):
    conversation_message_id: int | None = None


class VkMessage(_Provider):
    """A message of a dialog (``objects.json`` ``messages_message``)."""

    date: int
    from_id: int
    peer_id: int
    conversation_message_id: int
    id: int = 0  # 0 in group chats where the community lacks full access
    out: int = 0
    text: str = ""
    update_time: int | None = None
    attachments: list[VkAttachment] = Field(default_factory=list)
    geo: VkGeo | None = None
    reply_message: VkMessageRef | None = None
    payload: str | None = None
    admin_author_id: int | None = None


class VkClientInfo(_Provider):
    lang_id: int | None = None


class VkMessageNew(_Provider):
    """``message_new.object`` since API 5.103: the message and what the client can show."""

    message: VkMessage
    client_info: VkClientInfo | None = None


class VkCallback(_Provider):
    """The envelope of every Callback API request; ``object`` is read per ``type``."""

    type: str
    group_id: int = Field(strict=True)
    event_id: str | None = None
    v: str | None = None


class VkMessageRead(_Provider):
    """``message_read.object``: the user read our messages up to ``read_message_id`` (a
    global message id, what ``messages.send`` answered)."""

    from_id: int
    peer_id: int
    read_message_id: int


class VkTypingState(_Provider):
    """``message_typing_state.object``: the user types (or records a voice message)."""

    from_id: int
    state: str = "typing"


class VkMessagePermission(_Provider):
    """``message_allow`` / ``message_deny`` ``object``: the user allowed or forbade the
    community's messages (``key``: the widget's label, on allow)."""

    user_id: int
    key: str | None = None
