"""Viber: buttons as the ``keyboard`` object of ``send_message``.

Viber's keyboard (its bots' keyboard documentation) is a grid 6 columns wide; each button
spans ``Columns`` 1-6 and ``Rows`` 1-2, and the client packs buttons into rows in order,
starting a new row when the next one does not fit. So each of our rows gets columns that
add up to exactly 6 (a row of 4 is 2+2+1+1), and a row of more than 6 is split. ``Text`` is
at most 250 characters and may hold HTML, so the label is escaped and then shortened.

``ActionType: reply`` sends ``ActionBody`` as the customer's message: ours is the label, so
the dialog's history reads as the customer saw it and the press is read like a typed label
(``engine.buttons.text_fallback``). The whole request must stay under 30 KB with a text of
up to 7000 characters, so a keyboard whose JSON is over ``MAX_KEYBOARD_BYTES`` is not sent
(``None``: the caller sends numbered text instead).
"""

from __future__ import annotations

import html
from typing import Any

import orjson

from channels.text_shorten import shorten
from engine.buttons.keyboard import Button, Keyboard, reflow_rows

GRID_COLUMNS = 6
MAX_TEXT_CHARS = 250
MAX_KEYBOARD_BYTES = 12_000
"""Room left in the 30 KB request by a 7000-character text (at most 14 KB of UTF-8 for
Cyrillic or emoji) and the envelope."""


def keyboard_param(keyboard: Keyboard) -> dict[str, Any] | None:
    """The ``keyboard`` object for ``keyboard``, or ``None`` when it is too large to send."""
    body = keyboard_body(keyboard)
    return body if len(orjson.dumps(body)) <= MAX_KEYBOARD_BYTES else None


def keyboard_body(keyboard: Keyboard) -> dict[str, Any]:
    """The ``keyboard`` object, whatever its size."""
    buttons = [
        _button(button, columns)
        for row in reflow_rows(keyboard.rows, GRID_COLUMNS)
        for button, columns in zip(row, row_columns(len(row)), strict=True)
    ]
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}


def row_columns(count: int) -> list[int]:
    """Widths of ``count`` (1-6) buttons that fill one grid row exactly, wider ones first."""
    base, extra = divmod(GRID_COLUMNS, count)
    return [base + 1 if index < extra else base for index in range(count)]


def _escaped_length(text: str) -> int:
    return len(html.escape(text, quote=False))


def _button(button: Button, columns: int) -> dict[str, Any]:
    text = html.escape(shorten(button.label, MAX_TEXT_CHARS, _escaped_length), quote=False)
    return {
        "Columns": columns,
        "Rows": 1,
        "ActionType": "reply",
        "ActionBody": button.label,
        "Text": text,
    }
