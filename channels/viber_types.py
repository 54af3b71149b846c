"""What Viber sends: the REST Bot API's callbacks, as far as the channel reads them.

Unknown fields are ignored, since Viber adds event and message fields over time (channels.md
section 0, rule 5). ``message_token`` and ``timestamp`` are strict integers: a token that
went through a float (a JavaScript proxy, a lossy parser) no longer identifies its message,
and is refused rather than stored rounded.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Provider(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ViberUser(_Provider):
    """A message's ``sender``: the subscriber id is unique per user and bot, and never changes."""

    id: str = Field(min_length=1)
    name: str | None = None
    avatar: str | None = None
    language: str | None = None
    country: str | None = None
    api_version: int | None = None


class ViberLocation(_Provider):
    lat: float
    lon: float


class ViberContact(_Provider):
    phone_number: str
    name: str | None = None


class ViberMessage(_Provider):
    """The ``message`` of a ``message`` event; ``type`` says which other fields it carries."""

    type: str
    text: str | None = None
    media: str | None = None
    thumbnail: str | None = None
    file_name: str | None = None
    size: int | None = None
    duration: float | None = None
    sticker_id: int | None = None
    location: ViberLocation | None = None
    contact: ViberContact | None = None
    tracking_data: str | None = None


class ViberCallback(_Provider):
    """The envelope every callback shares."""

    event: str


class ViberMessageEvent(_Provider):
    """A ``message`` callback: the only event that carries a customer's message."""

    timestamp: int = Field(strict=True, description="Epoch milliseconds.")
    message_token: int = Field(strict=True)
    sender: ViberUser
    message: ViberMessage
    silent: bool = False


class ViberStatusEvent(_Provider):
    """A callback about a user rather than a message of theirs: ``delivered``, ``seen`` and
    ``failed`` name our message by its token and the user by ``user_id`` (``failed`` says
    why in ``desc``); ``unsubscribed`` names the user by ``user_id``, ``subscribed`` by
    ``user`` (channels.md section 3.3)."""

    timestamp: int = Field(strict=True, description="Epoch milliseconds.")
    message_token: int = Field(strict=True)
    user_id: str | None = Field(default=None, min_length=1)
    user: ViberUser | None = None
    desc: str | None = None
