"""Shortening a one-line text (a button label) to a channel's limit, with an ellipsis.

Labels are capped by the channels in their own units (VK: 40 characters; Viber: 250,
counted after its HTML escaping). A label that is too long is cut where ``split_text`` would
cut (at a space, never inside an emoji or a combining sequence) and ends in "…", so the
customer still reads where it goes on.
"""

from __future__ import annotations

from channels.text_split import Measure, code_points, split_text

ELLIPSIS = "…"


def shorten(text: str, limit: int, measure: Measure = code_points) -> str:
    """``text`` if it fits ``limit`` units of ``measure``, else a prefix plus "…" that does.

    ``limit`` must leave room for the ellipsis and one character (at least 2 units).
    """
    if measure(text) <= limit:
        return text
    parts = split_text(text, limit - measure(ELLIPSIS), measure)
    head = parts[0] if parts else ""
    return f"{head}{ELLIPSIS}"
