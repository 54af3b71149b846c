"""A widget connector's settings: the connector's ``credentials`` in the engine's YAML.

A connector belongs to one line, so these are the line's widget settings: who may embed it
(``allowed_origins``), how it looks, what it says, which visitor details it asks for, and
the limits the engine enforces on visitors (docs/channels/widget.md has every field).
Our own config: unknown fields are refused, and an error names the connector and field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.base import Credentials

WIDGET_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
"""The public widget id in the snippet: long enough not to be guessed by accident, though it
is no secret (every page embedding the widget shows it)."""

COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"
SAFE_UPLOAD_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
"""Types an upload may have: each is served as itself with ``nosniff``; nothing a browser
would run (no HTML, SVG or JavaScript)."""

VISITOR_TYPING_EVERY_S = 3.0
"""A typing visitor becomes at most one ``typing`` event per this many seconds: the widget
sends no more often, and the engine keeps one per window whatever it is sent."""


class Section(BaseModel):
    """A part of the settings: our config, so unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WidgetLook(Section):
    """Colours and position of the button and window."""

    accent_colour: str = Field(
        default="#1f6feb", pattern=COLOUR_PATTERN, description="Button and header colour."
    )
    text_colour: str = Field(
        default="#ffffff", pattern=COLOUR_PATTERN, description="Text on the accent colour."
    )
    position: Literal["bottom-right", "bottom-left"] = Field(
        default="bottom-right", description="Corner of the page the button sits in."
    )


class WidgetTexts(Section):
    """What the widget itself says (the line's own texts come from its rules)."""

    title: str = Field(default="Chat with us", min_length=1, max_length=100)
    button_label: str = Field(default="Open chat", min_length=1, max_length=100)
    placeholder: str = Field(default="Type a message", min_length=1, max_length=100)
    send_label: str = Field(default="Send", min_length=1, max_length=40)
    offline_note: str = Field(
        default="You are offline: messages will be sent when the connection is back.",
        min_length=1,
        max_length=300,
    )
    form_intro: str = Field(
        default="Please tell us how to reach you.", min_length=1, max_length=300
    )
    typing: str = Field(default="The operator is typing…", min_length=1, max_length=100)
    callback_label: str = Field(default="Call me back", min_length=1, max_length=60)
    callback_intro: str = Field(
        default="Leave your number: we will call you back.", min_length=1, max_length=300
    )
    callback_done: str = Field(
        default="Thank you: we will call you back.", min_length=1, max_length=300
    )


class VisitorForm(Section):
    """Which details the widget asks a visitor for, and when."""

    fields: tuple[Literal["name", "phone", "email"], ...] = Field(
        default=(), description="Asked in this order; none: no form."
    )
    required: bool = Field(
        default=False, description="True: the visitor fills the form before the first message."
    )

    @field_validator("fields")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each field at most once")
        return value


class WidgetRetention(Section):
    """How long the widget log keeps a visitor (docs/channels/widget.md, "Retention")."""

    history_days: float = Field(
        default=90.0,
        ge=1.0,
        le=3650.0,
        description="A visitor's conversation, uploads and token are removed once nothing "
        "of theirs happened for this long and no dialog of theirs is open.",
    )
    silent_visitor_hours: float = Field(
        default=24.0,
        ge=1.0,
        le=24.0 * 3650,
        description="A session that never sent anything (no message, no upload) is "
        "forgotten after this long.",
    )


class WidgetCredentials(Credentials):
    """A widget connector's settings (docs/channels/widget.md)."""

    widget_id: str = Field(
        pattern=WIDGET_ID_PATTERN, description="The public id in the site's script tag."
    )
    allowed_origins: tuple[str, ...] = Field(
        min_length=1,
        description="Origins (scheme://host[:port]) of the pages that may embed the widget.",
    )
    look: WidgetLook = Field(default_factory=WidgetLook)
    texts: WidgetTexts = Field(default_factory=WidgetTexts)
    form: VisitorForm = Field(default_factory=VisitorForm)
    callback: bool = Field(default=True, description='Offer the "call me back" form.')
    max_text_chars: int = Field(default=4000, ge=1, le=100_000, description="Per message.")
    max_file_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024, description="Per upload."
    )
    file_types: tuple[str, ...] = Field(
        default=SAFE_UPLOAD_TYPES, description="Upload types taken; a subset of the safe ones."
    )
    visitor_messages_per_minute: int = Field(
        default=30, ge=1, description="Messages and uploads one visitor may send a minute."
    )
    address_requests_per_minute: int = Field(
        default=300, ge=1, description="Widget API requests one IP address may make a minute."
    )
    retention: WidgetRetention = Field(default_factory=WidgetRetention)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://shop.example")
        return value

    @field_validator("file_types")
    @classmethod
    def _safe_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unsafe = sorted(set(value) - set(SAFE_UPLOAD_TYPES))
        if unsafe:
            raise ValueError(f"{unsafe} not among the safe types {list(SAFE_UPLOAD_TYPES)}")
        return value

    def public_settings(self) -> dict[str, object]:
        """What the widget script is given: nothing secret, nothing about limits' state."""
        return {
            "look": self.look.model_dump(),
            "texts": self.texts.model_dump(),
            "form": self.form.model_dump(),
            "callback": self.callback,
            "max_text_chars": self.max_text_chars,
            "max_file_bytes": self.max_file_bytes,
            "file_types": list(self.file_types),
            "typing_every_s": VISITOR_TYPING_EVERY_S,
        }
