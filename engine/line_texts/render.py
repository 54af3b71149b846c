"""Turning a line's texts into what one customer reads: their language, their values.

``TextRenderer`` is built once per line from its ``languages`` section and its placeholder
defaults, and shared by the line's own messages (``line``) and its bot (``engine.bot``).
Rendering never raises: the texts were checked at load, and a value that is missing at send
time becomes the line's default for it or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.buttons.keyboard import Keyboard
from engine.line_texts.languages import (
    LanguagesConfig,
    LocalizedText,
    choose_language,
)
from engine.line_texts.templates import Placeholder, TextValues, fill


@dataclass(frozen=True)
class TextContext:
    """One customer at one moment: their language (from ``TextRenderer.language_for``) and
    the values of the placeholders."""

    language: str
    values: TextValues = field(default_factory=TextValues)


@dataclass(frozen=True)
class LineReply:
    """A text the line sends on its own, with buttons or without.

    The dispatcher sends it through the dialog's channel like an operator's reply, rendering
    the keyboard with ``channels.keyboards.render_buttons``.
    """

    text: str
    keyboard: Keyboard | None = None


class TextRenderer:
    """A line's texts for one customer."""

    def __init__(
        self,
        languages: LanguagesConfig | None,
        defaults: Mapping[Placeholder, LocalizedText] | None = None,
    ) -> None:
        self.languages = languages
        self._defaults = dict(defaults or {})

    def language_for(self, customer_language: str | None) -> str:
        return choose_language(customer_language, self.languages)

    def context(self, customer_language: str | None, values: TextValues) -> TextContext:
        return TextContext(self.language_for(customer_language), values)

    def pick(self, text: LocalizedText, language: str) -> str:
        """The text in ``language`` as written, placeholders untouched (labels have none)."""
        default = self.languages.default if self.languages is not None else None
        return text.pick(language, default)

    def render(self, text: LocalizedText, context: TextContext) -> str:
        """``text`` in the context's language with its placeholders filled."""
        defaults: dict[str, str] = {
            name: self.pick(default, context.language) for name, default in self._defaults.items()
        }
        return fill(self.pick(text, context.language), context.values, defaults)
