"""What the WhatsApp Cloud API posts in ``changes[].value`` of field ``messages``, as far as
the channel reads it (docs/channels/whatsapp.md). Unknown fields are ignored; ``timestamp``
is Unix seconds as a string, as Meta sends it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from channels.meta.envelope import MetaId, MetaModel


def _seconds(value: object) -> object:
    """WhatsApp's ``"1749416383"``; a number is taken too, anything else is refused."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


Seconds = Annotated[int, BeforeValidator(_seconds), Field(ge=0, strict=True)]


class WaMetadata(MetaModel):
    display_phone_number: str | None = None
    phone_number_id: MetaId


class WaProfile(MetaModel):
    name: str | None = None
    username: str | None = None


class WaContact(MetaModel):
    """``contacts[]``: who wrote, by ``wa_id`` (or, since usernames, ``user_id``)."""

    wa_id: str | None = None
    user_id: str | None = None
    profile: WaProfile | None = None


class WaText(MetaModel):
    body: str


class WaMedia(MetaModel):
    """image, video, audio, document, sticker: a media id to fetch, not a URL."""

    id: MetaId
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    animated: bool = False


class WaLocation(MetaModel):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class WaContactName(MetaModel):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class WaContactPhone(MetaModel):
    phone: str | None = None
    wa_id: str | None = None


class WaSharedContact(MetaModel):
    name: WaContactName | None = None
    phones: list[WaContactPhone] = Field(default_factory=list)


class WaReply(MetaModel):
    id: str
    title: str


class WaInteractive(MetaModel):
    type: str
    button_reply: WaReply | None = None
    list_reply: WaReply | None = None


class WaButton(MetaModel):
    """A template's quick-reply button."""

    payload: str | None = None
    text: str


class WaReaction(MetaModel):
    message_id: str
    emoji: str | None = None


class WaContext(MetaModel):
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False


class WaError(MetaModel):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: dict[str, object] | None = None


class WaMessage(MetaModel):
    id: str = Field(min_length=1)
    type: str
    timestamp: Seconds
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    context: WaContext | None = None
    text: WaText | None = None
    image: WaMedia | None = None
    video: WaMedia | None = None
    audio: WaMedia | None = None
    document: WaMedia | None = None
    sticker: WaMedia | None = None
    location: WaLocation | None = None
    contacts: list[WaSharedContact] = Field(default_factory=list)
    interactive: WaInteractive | None = None
    button: WaButton | None = None
    reaction: WaReaction | None = None
    errors: list[WaError] = Field(default_factory=list)


class WaStatus(MetaModel):
    """A receipt of one of our messages, keyed by its ``wamid``."""

    id: str
    status: str
    timestamp: Seconds
    recipient_id: str | None = None
    errors: list[WaError] = Field(default_factory=list)


class WaValue(MetaModel):
    messaging_product: str | None = None
    metadata: WaMetadata
    contacts: list[WaContact] = Field(default_factory=list)
    messages: list[dict[str, object]] = Field(default_factory=list)
    statuses: list[dict[str, object]] = Field(default_factory=list)
    errors: list[WaError] = Field(default_factory=list)
