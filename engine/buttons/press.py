"""What a customer sent, as the line's questions and the bot read it: text and/or a press.

A button press reaches the engine differently per channel, and every channel normalizes it
into an ``InboundMessage`` the same way, so nothing here knows a channel:

* ``extras["button_payload"]``: the payload of a pressed button, for channels whose press is
  an event of its own (Telegram's ``callback_query``; ``channels/telegram_keyboard.py``
  reads one). The message's text is then the button's label, so the dialog's history reads
  as the customer saw it.
* ``extras["payload"]``: the JSON string a channel copies from the provider (VK puts a text
  button's ``payload`` on the message it sends with the label as text). Our keyboards wrap
  the payload as ``{"ol": "<payload>"}`` (``wrap_json_payload``); anything else there (VK's
  own "Start" button sends ``{"command":"start"}``) is not ours and is ignored.
* no payload at all: Viber sends the button's ``ActionBody``, which is the label, as the
  text; a channel without buttons gets the number or label typed. ``text_fallback`` maps
  those to a button when the caller knows which keyboard was offered.

A sticker's emoji counts as its text: a 👍 sticker answers a rating like a typed 👍.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from engine.buttons.keyboard import Keyboard, is_payload
from engine.buttons.text_fallback import chosen_button
from engine.models import InboundMessage, StickerContent, TextContent

BUTTON_PAYLOAD_EXTRA = "button_payload"
JSON_PAYLOAD_EXTRA = "payload"
JSON_PAYLOAD_KEY = "ol"


@dataclass(frozen=True)
class CustomerInput:
    """A customer's message as the line reads it: its text, and the payload if a button of
    ours was pressed. Both may be set (a press with its label), either, or neither (a
    photo)."""

    text: str | None = None
    payload: str | None = None

    def choice(self, keyboard: Keyboard) -> str | None:
        """The payload of the button of ``keyboard`` this input chose, by press, label or
        number; ``None`` when it chose none of them."""
        if self.payload is not None and keyboard.by_payload(self.payload) is not None:
            return self.payload
        if self.text is None:
            return None
        button = chosen_button(self.text, keyboard)
        return button.payload if button is not None else None


def customer_input(message: InboundMessage) -> CustomerInput:
    """Read ``message`` as an input; never raises, whatever the extras hold."""
    return CustomerInput(text=_text_of(message), payload=_payload_of(message))


def wrap_json_payload(payload: str) -> str:
    """The JSON string a channel with JSON payloads (VK) carries for ``payload``."""
    return orjson.dumps({JSON_PAYLOAD_KEY: payload}).decode()


def unwrap_json_payload(raw: str) -> str | None:
    """Our payload from a channel's JSON payload, or ``None`` if it is not one of ours."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = data.get(JSON_PAYLOAD_KEY) if isinstance(data, dict) else None
    return value if isinstance(value, str) and is_payload(value) else None


def _text_of(message: InboundMessage) -> str | None:
    content = message.content
    if isinstance(content, TextContent):
        return content.text
    if isinstance(content, StickerContent):
        return content.emoji
    return None


def _payload_of(message: InboundMessage) -> str | None:
    pressed = message.extras.get(BUTTON_PAYLOAD_EXTRA)
    if pressed is not None and is_payload(pressed):
        return pressed
    raw = message.extras.get(JSON_PAYLOAD_EXTRA)
    return unwrap_json_payload(raw) if raw is not None else None
