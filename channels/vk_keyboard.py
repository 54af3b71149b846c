"""VK: buttons as the ``keyboard`` parameter of ``messages.send`` (a JSON string).

VK's limits (its bots' keyboard documentation): a label of at most 40 characters, a
``payload`` of at most 255 characters of JSON; an inline keyboard (shown inside the message)
of at most 5 buttons per row, 6 rows and 10 buttons; a standard one (under the input field)
of 5 per row, 10 rows, 40 buttons. Rows wider than 5 are re-flowed; a keyboard that fits
inline is sent inline, else as a standard one-time keyboard (hidden after a press), else
not at all (``None``: the caller sends the options as numbered text).

A press comes back as a message whose text is the label and whose ``payload`` is the JSON we
gave, ``{"ol": "<payload>"}``: ``engine.buttons.press`` reads it from ``extras["payload"]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from channels.text_shorten import shorten
from channels.text_split import utf16_units
from engine.buttons.keyboard import Button, Keyboard, reflow_rows
from engine.buttons.press import wrap_json_payload

MAX_LABEL_CHARS = 40
MAX_PAYLOAD_CHARS = 255
MAX_ROW_BUTTONS = 5
INLINE_MAX_ROWS = 6
INLINE_MAX_BUTTONS = 10
STANDARD_MAX_ROWS = 10
STANDARD_MAX_BUTTONS = 40


def keyboard_param(keyboard: Keyboard) -> str | None:
    """The ``keyboard`` parameter for ``keyboard``, or ``None`` when VK cannot show it."""
    rows = reflow_rows(keyboard.rows, MAX_ROW_BUTTONS)
    count = len(keyboard.buttons)
    buttons = [[_button(button) for button in row] for row in rows]
    if len(rows) <= INLINE_MAX_ROWS and count <= INLINE_MAX_BUTTONS:
        body: dict[str, Any] = {"inline": True, "buttons": buttons}
    elif len(rows) <= STANDARD_MAX_ROWS and count <= STANDARD_MAX_BUTTONS:
        body = {"one_time": True, "inline": False, "buttons": buttons}
    else:
        return None
    return orjson.dumps(body).decode()


def _button(button: Button) -> dict[str, Any]:
    payload = wrap_json_payload(button.payload)
    if len(payload) > MAX_PAYLOAD_CHARS:  # the payload grammar keeps it far below
        raise ValueError(f"VK payload {payload!r} is over {MAX_PAYLOAD_CHARS} characters")
    # VK does not say how it counts; UTF-16 units are never fewer than code points.
    label = shorten(button.label, MAX_LABEL_CHARS, utf16_units)
    return {"action": {"type": "text", "label": label, "payload": payload}}
