"""Channel-neutral buttons: the keyboard model, its text fallback and reading a press
(``press``, which reads the universal message and so is imported from its module: the
universal reply carries a keyboard, and this package must load before ``engine.models``).

``docs/line-messages.md`` ("Buttons") describes how each channel carries them.
"""

from __future__ import annotations

from engine.buttons.keyboard import Button, Keyboard, fold_label, is_payload, make_payload
from engine.buttons.text_fallback import chosen_button, numbered_text

__all__ = [
    "Button",
    "Keyboard",
    "chosen_button",
    "fold_label",
    "is_payload",
    "make_payload",
    "numbered_text",
]
