"""Buttons the line offers a customer, channel-neutral: rows of labels with payloads.

The rating request, the consent request and the bot's menus all offer choices. They are
built here once, in the customer's language, and every channel renders the same
``Keyboard`` as what it can carry (``channels/keyboards.py``): Telegram's inline keyboard,
VK's keyboard, Viber's keyboard, or numbered options in the text (``text_fallback``).

A payload is the engine's own short id of a choice (``ol:rate:5``). Its alphabet and length
fit every channel's limit by construction, so no renderer ever has to shorten one: Telegram's
``callback_data`` takes 1-64 bytes, VK's ``payload`` 255 characters of JSON, and the grammar
keeps it ASCII and within ``PAYLOAD_MAX_CHARS``. A press comes back as that payload (Telegram,
VK) or as the label's text (Viber sends the button's ``ActionBody``, which is the label, as
the customer's message; a channel without buttons gets the number or the label typed).
See ``docs/line-messages.md``, "Buttons".
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from engine.frozen import Frozen

PAYLOAD_PREFIX = "ol"
PAYLOAD_MAX_CHARS = 64
"""Telegram's ``callback_data`` limit is 64 bytes; payloads are ASCII, so 64 characters."""
PAYLOAD_PATTERN = r"^ol(?::[A-Za-z0-9_.-]{1,24}){1,4}$"
LABEL_MAX_CHARS = 100
"""Our own cap: long enough for any button a person reads, short enough that 40 of them
stay far inside every provider's request size (Viber: 30 KB for the whole message)."""
MAX_ROWS = 12
MAX_ROW_BUTTONS = 8
MAX_BUTTONS = 40
"""Caps of the channel-neutral keyboard. Each channel renderer re-flows rows to its own
limits (VK: 5 per row) or answers "does not fit" so the caller falls back to text."""

_PAYLOAD_RE = re.compile(PAYLOAD_PATTERN)
_PAYLOAD_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,24}$")


def make_payload(*parts: str) -> str:
    """``ol:<part>:<part>...``; ``ValueError`` for a part outside the grammar.

    Only the engine makes payloads (a line's YAML names labels and actions, never payloads),
    so a bad part is a programming error and is raised, not shortened.
    """
    for part in parts:
        if not _PAYLOAD_PART_RE.match(part):
            raise ValueError(f"payload part {part!r} is not 1-24 of A-Z a-z 0-9 _ . -")
    payload = ":".join((PAYLOAD_PREFIX, *parts))
    if not is_payload(payload):
        raise ValueError(f"payload {payload!r}: 1 to 4 parts, {PAYLOAD_MAX_CHARS} characters")
    return payload


def is_payload(text: str) -> bool:
    """Whether ``text`` is shaped like one of the engine's payloads."""
    return len(text) <= PAYLOAD_MAX_CHARS and _PAYLOAD_RE.match(text) is not None


def visible_label(label: str) -> str:
    """``label`` if a button can show it: not blank, one line, no control characters."""
    if not label.strip():
        raise ValueError("a button label cannot be blank")
    if any(unicodedata.category(char) == "Cc" for char in label):
        raise ValueError("a button label is one line, without control characters")
    return label


Label = Annotated[
    str, Field(min_length=1, max_length=LABEL_MAX_CHARS), AfterValidator(visible_label)
]


class Button(Frozen):
    """One choice: what the customer reads and the payload that comes back when pressed."""

    label: Label = Field(description="The text on the button, in the customer's language.")
    payload: str = Field(
        pattern=PAYLOAD_PATTERN,
        max_length=PAYLOAD_MAX_CHARS,
        description="The engine's id of the choice (ol:...), returned by a press.",
    )


class Keyboard(Frozen):
    """Rows of buttons, top to bottom; within a row, left to right.

    Payloads are unique, and so are labels once folded (case, spacing): a label typed back
    or sent by Viber must name one button only.
    """

    rows: tuple[tuple[Button, ...], ...] = Field(
        min_length=1, max_length=MAX_ROWS, description="The rows, each with at least one button."
    )

    @model_validator(mode="after")
    def _well_formed(self) -> Keyboard:
        if any(not row or len(row) > MAX_ROW_BUTTONS for row in self.rows):
            raise ValueError(f"every row holds 1 to {MAX_ROW_BUTTONS} buttons")
        buttons = self.buttons
        if len(buttons) > MAX_BUTTONS:
            raise ValueError(f"a keyboard holds at most {MAX_BUTTONS} buttons")
        if len({button.payload for button in buttons}) != len(buttons):
            raise ValueError("two buttons share a payload")
        if len({fold_label(button.label) for button in buttons}) != len(buttons):
            raise ValueError("two buttons share a label")
        return self

    @property
    def buttons(self) -> tuple[Button, ...]:
        """Every button in reading order: the order the text fallback numbers them."""
        return tuple(button for row in self.rows for button in row)

    def by_payload(self, payload: str) -> Button | None:
        return next((button for button in self.buttons if button.payload == payload), None)

    @classmethod
    def one_row(cls, buttons: tuple[Button, ...]) -> Keyboard:
        return cls(rows=(buttons,))

    @classmethod
    def column(cls, buttons: tuple[Button, ...]) -> Keyboard:
        return cls(rows=tuple((button,) for button in buttons))


def reflow_rows(rows: tuple[tuple[Button, ...], ...], width: int) -> tuple[tuple[Button, ...], ...]:
    """Rows of at most ``width`` buttons, each wider row split in order into several: how a
    channel narrower than the neutral keyboard keeps its reading order."""
    return tuple(row[start : start + width] for row in rows for start in range(0, len(row), width))


def fold_label(text: str) -> str:
    """A label or a typed text as compared: NFKC, case-folded, ``ё`` as ``е``, emoji
    variation selectors dropped, inner whitespace collapsed, trailing punctuation trimmed.

    So "  Да! ", "да" and "ДА" name the same button, and "❤️" the same as "❤".
    """
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    folded = folded.replace("\ufe0f", "").replace("\ufe0e", "")
    folded = " ".join(folded.split())
    return folded.strip(" .,!?;:…")
