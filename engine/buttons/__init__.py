"""Channel-neutral buttons: the keyboard model, its text fallback and reading a press.

``docs/line-messages.md`` ("Buttons") describes how each channel carries them.
"""

from __future__ import annotations

from engine.buttons.keyboard import Button, Keyboard, fold_label, is_payload, make_payload
from engine.buttons.press import CustomerInput, customer_input
from engine.buttons.text_fallback import chosen_button, numbered_text

__all__ = [
    "Button",
    "CustomerInput",
    "Keyboard",
    "chosen_button",
    "customer_input",
    "fold_label",
    "is_payload",
    "make_payload",
    "numbered_text",
]
