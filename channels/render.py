"""The one renderer of a reply into what a channel can carry (docs/channels/contract.md,
"Outbound"): the channel's ``Capabilities`` decide, the channel only maps the parts to its
API calls.

* A text longer than ``max_text_chars`` is split on paragraph, line or word boundaries
  (``text_split``), measured in the channel's unit; blank parts are dropped.
* An image or file the channel cannot send (``images``/``files`` False) goes as text: the
  caption, then the URL on its own line, a link the customer's app opens.
* A caption longer than ``max_caption_chars`` leaves the media uncaptioned and follows it as
  text.
* Buttons are each channel's own keyboard when it has one, else numbered options in the
  text (``channels.keyboards``). Operators' texts are plain text: there is no markup to
  convert or strip yet.

A reply that renders to nothing (only whitespace) is a ``PermanentSendError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from channels.text_split import Measure, split_text, utf16_units
from engine.errors import PermanentSendError
from engine.models import OutboundFile, OutboundImage, OutboundText, ReplyRequest


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry outbound; replies are rendered down to it."""

    max_text_chars: int
    images: bool = True
    files: bool = True
    max_caption_chars: int | None = None
    buttons: bool = True
    """It shows a keyboard of its own (``channels.keyboards``); else numbered options."""
    editing: bool = False
    """It can edit a sent message (the engine does not edit yet)."""


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class MediaPart:
    kind: Literal["image", "file"]
    url: str
    caption: str | None
    name: str | None = None


Part = TextPart | MediaPart


def render(
    request: ReplyRequest, capabilities: Capabilities, measure: Measure = utf16_units
) -> list[Part]:
    """The parts that carry ``request``'s content, in order (``request``'s keyboard is the
    channel's to place: ``channels.keyboards.reply_buttons`` first)."""
    content = request.content
    parts: list[Part]
    if isinstance(content, OutboundText):
        parts = [*text_parts(content.text, capabilities, measure)]
    elif isinstance(content, OutboundImage | OutboundFile):
        parts = _media_parts(content, capabilities, measure)
    else:  # pragma: no cover - the union is closed; a new kind must be rendered here
        raise PermanentSendError(f"cannot render {type(content).__name__}")
    if not parts:
        raise PermanentSendError("text is nothing but whitespace")
    return parts


def text_parts(text: str, capabilities: Capabilities, measure: Measure) -> list[TextPart]:
    return [
        TextPart(part)
        for part in split_text(text, capabilities.max_text_chars, measure)
        if part.strip()
    ]


def _media_parts(
    content: OutboundImage | OutboundFile, capabilities: Capabilities, measure: Measure
) -> list[Part]:
    kind: Literal["image", "file"] = "image" if isinstance(content, OutboundImage) else "file"
    supported = capabilities.images if kind == "image" else capabilities.files
    caption = content.caption or None
    if not supported:
        as_link = "\n".join(part for part in (caption, content.url) if part)
        return [*text_parts(as_link, capabilities, measure)]
    name = content.name if isinstance(content, OutboundFile) else None
    limit = capabilities.max_caption_chars
    if caption is None or limit is None or measure(caption) <= limit:
        return [MediaPart(kind, content.url, caption, name)]
    return [MediaPart(kind, content.url, None, name), *text_parts(caption, capabilities, measure)]
