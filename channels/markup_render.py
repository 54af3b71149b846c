"""Styled spans (``channels.markup``) as each channel carries them, split within its limit
without breaking a tag or an entity (docs/channels/markup.md).

A channel's ``Capabilities.markup`` names its flavour:

* ``telegram_html``: Telegram's HTML (``parse_mode=HTML``): ``<b>``, ``<i>``, ``<u>``,
  ``<s>``, ``<a href>``; ``<``, ``>``, ``&`` and quotes escaped. Telegram counts its limit
  on the text after parsing, so a part is measured by its visible text.
* ``whatsapp``: ``*bold*``, ``_italic_``, ``~strike~`` (no underline); a link as its text
  and the URL in brackets. WhatsApp reads a marker only next to a non-space character, so
  spaces at a styled span's edges go outside its markers.
* ``plain``: the visible text; a link whose text is not its URL as "text (URL)", so the
  customer still has the address.

A long text is split on the visible text (``channels.text_split``'s boundaries); each part
is rendered on its own, closing every tag it opened, and the next part opens them again.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Literal

from channels.markup import STYLES, Span, merge, slice_spans, visible
from channels.text_split import Measure, split_text

Markup = Literal["plain", "telegram_html", "whatsapp"]

_HTML_TAGS = {"b": "b", "i": "i", "u": "u", "s": "s"}
_WHATSAPP_MARKERS = {"b": "*", "i": "_", "s": "~"}


def lower(spans: tuple[Span, ...], markup: Markup) -> tuple[Span, ...]:
    """The spans with what the flavour cannot carry turned into text: links spelled out
    (but in Telegram's HTML), styles it lacks dropped."""
    if markup == "telegram_html":
        return spans
    keep = frozenset(_WHATSAPP_MARKERS) if markup == "whatsapp" else frozenset()
    out: list[Span] = []
    for span in spans:
        styles = span.styles & keep
        out.append(Span(span.text, styles))
        if span.url is not None and span.text.strip() != span.url:
            out.append(Span(f" ({span.url})", styles))
    return tuple(merge(out))


def to_text(spans: tuple[Span, ...], markup: Markup) -> str:
    """Lowered spans in the flavour's syntax."""
    if markup == "telegram_html":
        return "".join(_html(span) for span in spans)
    if markup == "whatsapp":
        return "".join(_whatsapp(span) for span in spans)
    return visible(spans)


def counted(markup: Markup) -> Callable[[tuple[Span, ...]], str]:
    """What a channel's limit counts of a part: Telegram the text after parsing, the
    others what is sent."""
    if markup == "telegram_html":
        return visible
    return lambda spans: to_text(spans, markup)


def split_spans(
    spans: tuple[Span, ...], limit: int, measure: Measure, markup: Markup
) -> list[str]:
    """Lowered ``spans`` as parts in the flavour's syntax, each within ``limit`` units of
    ``measure`` as the channel counts it; blank parts dropped.

    A part is cut where ``split_text`` cuts the visible text; when its markers make it too
    long, the cut moves back by the excess and is tried again.
    """
    count = counted(markup)
    parts: list[str] = []
    rest = spans
    while visible(rest).strip():
        text = visible(rest)
        budget = limit
        while True:
            head_text = split_text(text, budget, measure)[0]
            start = text.index(head_text)
            head = slice_spans(rest, start, start + len(head_text))
            excess = measure(count(head)) - limit
            if excess <= 0:
                break
            if budget <= 1:
                raise ValueError(f"limit {limit} leaves no room for the markup of a part")
            budget = max(1, min(budget, measure(head_text)) - excess)
        parts.append(to_text(head, markup))
        after = text[start + len(head_text) :]
        # The whitespace at a cut is dropped, as ``split_text`` drops it.
        rest = slice_spans(rest, len(text) - len(after.lstrip()), len(text))
    return parts


def _html(span: Span) -> str:
    inner = html.escape(span.text, quote=False)
    for style in reversed(STYLES):
        if style in span.styles:
            inner = f"<{_HTML_TAGS[style]}>{inner}</{_HTML_TAGS[style]}>"
    if span.url is not None:
        inner = f'<a href="{html.escape(span.url, quote=True)}">{inner}</a>'
    return inner


def _whatsapp(span: Span) -> str:
    core = span.text.strip()
    markers = "".join(_WHATSAPP_MARKERS[s] for s in STYLES if s in span.styles)
    if not core or not markers:
        return span.text
    lead = span.text[: len(span.text) - len(span.text.lstrip())]
    trail = span.text[len(span.text.rstrip()) :]
    return f"{lead}{markers}{core}{markers[::-1]}{trail}"
