"""Messenger and Instagram: buttons as ``quick_replies`` on the message that carries them.

Quick replies (docs/channels/facebook.md, "Send API") are at most 13, each a ``title`` of at
most 20 characters and a ``payload`` of at most 1000; a press comes back as a message whose
text is the title and whose ``quick_reply.payload`` is ours. A keyboard with more buttons or
a longer label is not shown as quick replies (``None``: the caller sends numbered text),
since a cut label may no longer say what the button does.
"""

from __future__ import annotations

from typing import Any

from engine.buttons.keyboard import Keyboard

MAX_QUICK_REPLIES = 13
MAX_TITLE_CHARS = 20


def quick_replies_param(keyboard: Keyboard) -> dict[str, Any] | None:
    """``{"quick_replies": [...]}`` for the message object, or ``None`` if it does not fit."""
    buttons = keyboard.buttons
    if len(buttons) > MAX_QUICK_REPLIES:
        return None
    if any(len(button.label) > MAX_TITLE_CHARS for button in buttons):
        return None
    return {
        "quick_replies": [
            {"content_type": "text", "title": button.label, "payload": button.payload}
            for button in buttons
        ]
    }
