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
  text (``channels.keyboards``).
* A text's markup (the portal's BB-code, ``channels.markup``; ``OutboundText.markup``) is
  converted to the channel's flavour (``Capabilities.markup``: Telegram's HTML, WhatsApp's
  ``*bold*``, else plain text with links spelled out), and a long text is split without
  breaking a tag (``channels.markup_render``). Captions are plain text in that flavour
  (escaped for Telegram's HTML).

A reply that renders to nothing (only whitespace) is a ``PermanentSendError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from channels.markup import Span, parse_bbcode, plain_spans
from channels.markup_render import Markup, counted, lower, split_spans, to_text
from channels.text_split import Measure, utf16_units
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
    markup: Markup = "plain"
    """The markup its texts carry (``channels.markup_render``); plain: none."""


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
        spans = parse_bbcode(content.text) if content.markup == "bbcode" else None
        parts = [*text_parts(content.text, capabilities, measure, spans)]
    elif isinstance(content, OutboundImage | OutboundFile):
        parts = _media_parts(content, capabilities, measure)
    else:  # pragma: no cover - the union is closed; a new kind must be rendered here
        raise PermanentSendError(f"cannot render {type(content).__name__}")
    if not parts:
        raise PermanentSendError("text is nothing but whitespace")
    return parts


def text_parts(
    text: str,
    capabilities: Capabilities,
    measure: Measure,
    spans: tuple[Span, ...] | None = None,
) -> list[TextPart]:
    """``text`` (plain, or read as ``spans``) in the channel's markup, split within its limit."""
    lowered = lower(spans if spans is not None else plain_spans(text), capabilities.markup)
    try:
        parts = split_spans(lowered, capabilities.max_text_chars, measure, capabilities.markup)
    except ValueError as exc:
        raise PermanentSendError(f"cannot split the text: {exc}") from exc
    return [TextPart(part) for part in parts if part.strip()]


def caption_text(caption: str, capabilities: Capabilities) -> tuple[str, str]:
    """A plain caption in the channel's markup, and what its limit counts of it."""
    lowered = lower(plain_spans(caption), capabilities.markup)
    return to_text(lowered, capabilities.markup), counted(capabilities.markup)(lowered)


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
    if caption is None:
        return [MediaPart(kind, content.url, None, name)]
    shown, length = caption_text(caption, capabilities)
    if limit is None or measure(length) <= limit:
        return [MediaPart(kind, content.url, shown, name)]
    return [MediaPart(kind, content.url, None, name), *text_parts(caption, capabilities, measure)]
