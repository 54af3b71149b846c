"""Texts with placeholders: checked when the line's file loads, filled safely when sent.

A line's texts may name ``{customer_name}``, ``{operator_name}``, ``{line_name}``,
``{opens_at}`` and ``{queue_position}``; ``{{`` and ``}}`` are literal braces. Anything else
in braces is refused at load with the field's name (``docs/line-messages.md``,
"Placeholders"), so a typo never reaches a customer as ``{custmer_name}``.

Filling never uses ``str.format`` on the text: the text is the line manager's, and format
specs or attribute access (``{customer_name.__class__}``) would let a text reach into the
engine's objects. The text is split once into literals and names, and each name is replaced
by its value, or by the line's default for it, or by nothing.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Placeholder = Literal["customer_name", "operator_name", "line_name", "opens_at", "queue_position"]
PLACEHOLDERS: frozenset[str] = frozenset(get_args(Placeholder))
TEXT_MAX_CHARS = 4096

_FORMATTER = string.Formatter()


def check_template(text: str, allowed: frozenset[str] = PLACEHOLDERS) -> str:
    """``text`` unchanged if every placeholder in it is one of ``allowed``, else ``ValueError``
    saying which one and what is known."""
    if not text.strip():
        raise ValueError("a text cannot be blank")
    if len(text) > TEXT_MAX_CHARS:
        raise ValueError(f"a text is at most {TEXT_MAX_CHARS} characters, this one {len(text)}")
    for _, name, spec, conversion in _parse(text):
        if name is None:
            continue
        if name not in allowed:
            known = ", ".join(f"{{{known}}}" for known in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {{{name}}}; known: {known}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format: write {{{name}}}")
    return text


def _parse(text: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_FORMATTER.parse(text))
    except ValueError as exc:  # "Single '}' encountered", "expected '}' before end of string"
        raise ValueError(f"{exc}; write {{{{ and }}}} for literal braces") from None


@dataclass(frozen=True)
class TextValues:
    """What the placeholders stand for at send time; ``None`` when not known (no operator
    yet, a channel that sends no name)."""

    customer_name: str | None = None
    operator_name: str | None = None
    line_name: str | None = None
    opens_at: str | None = None
    queue_position: int | None = None

    def get(self, name: str) -> str | None:
        value = getattr(self, name, None) if name in PLACEHOLDERS else None
        if value is None:
            return None
        text = str(value).strip()
        return text or None


def fill(text: str, values: TextValues, defaults: Mapping[str, str] | None = None) -> str:
    """``text`` with each placeholder replaced by its value, else its default, else "" (and
    then the space on one side of it goes, so no double space is left).

    Never raises: a text that did not pass ``check_template`` (it always has, at load) is
    returned as written rather than failing a message to a customer.
    """
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError:
        return text
    out = ""
    emptied = False
    for literal, name, _, _ in parts:
        if emptied and literal.startswith(" ") and out.endswith(" "):
            literal = literal[1:]  # "Rate {operator_name} now" without a name: one space
        out += literal
        emptied = False
        if name is not None:
            value = values.get(name)
            if value is None:
                value = (defaults or {}).get(name, "")
            out += value
            emptied = not value
    return out[:-1] if emptied and out.endswith(" ") else out
