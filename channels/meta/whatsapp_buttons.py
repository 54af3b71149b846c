"""WhatsApp: buttons as an ``interactive`` reply-button message (docs/channels/whatsapp.md).

At most 3 buttons, each a ``title`` of at most 20 characters and an ``id`` of at most 256
(our payload); the text above them is the ``body`` (at most 1024 characters). A press comes
back as an ``interactive`` message with ``button_reply`` ``{id, title}``. A keyboard that does
not fit is sent as numbered text instead (``None`` here).
"""

from __future__ import annotations

from typing import Any

from engine.buttons.keyboard import Keyboard

MAX_BUTTONS = 3
MAX_TITLE_CHARS = 20
MAX_BODY_CHARS = 1024


def interactive_buttons(text: str, keyboard: Keyboard) -> dict[str, Any] | None:
    """The ``interactive`` object carrying ``text`` and ``keyboard``, or ``None``."""
    buttons = keyboard.buttons
    if len(buttons) > MAX_BUTTONS or len(text) > MAX_BODY_CHARS:
        return None
    if any(len(button.label) > MAX_TITLE_CHARS for button in buttons):
        return None
    return {
        "type": "button",
        "body": {"text": text},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": button.payload, "title": button.label}}
                for button in buttons
            ]
        },
    }
