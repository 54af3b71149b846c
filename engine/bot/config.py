"""The ``bot`` section of a line's file: rules, a menu and when to hand over to operators.

Regular expressions are compiled and their cost bounded at load (``regex_guard``); keywords
are parsed at load (``keywords``). ``docs/bot.md`` is the reference of every field.
"""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import Field, field_validator, model_validator

from engine.bot.keywords import Keyword
from engine.bot.regex_guard import MAX_LINE_COST, RegexCost, compile_guarded
from engine.config import ConfigModel
from engine.line_texts.languages import LocalizedText, check_label

MAX_CHOICES = 10
"""Buttons of one answer or of the menu, one per row: 10 rows fit every channel's keyboard
(VK's inline one takes 6 rows, its one-time keyboard 10), so no menu is ever shown as text
on a channel that has buttons."""
MAX_KEYWORDS = 100
KEYWORD_MAX_CHARS = 100


def _parsed_keywords(keywords: tuple[str, ...]) -> tuple[str, ...]:
    for keyword in keywords:
        if len(keyword) > KEYWORD_MAX_CHARS:
            raise ValueError(f"keyword {keyword[:20]!r}... is over {KEYWORD_MAX_CHARS} characters")
        Keyword.parse(keyword)
    return keywords


class BotChoice(ConfigModel):
    """A button: an answer, the hand-over to an operator, or the menu again."""

    label: LocalizedText = Field(description="The text on the button.")

    @field_validator("label")
    @classmethod
    def _label(cls, label: LocalizedText) -> LocalizedText:
        return check_label(label)

    answer: LocalizedText | None = Field(default=None, description="What the bot answers.")
    handover: bool = Field(default=False, description="true: hand the dialog to operators.")
    menu: bool = Field(default=False, description="true: show the menu again.")

    @model_validator(mode="after")
    def _one_action(self) -> BotChoice:
        if (self.answer is not None) + self.handover + self.menu != 1:
            raise ValueError("give exactly one of answer, handover: true or menu: true")
        return self


class BotMatch(ConfigModel):
    keywords: tuple[str, ...] = Field(
        default=(), max_length=MAX_KEYWORDS, description="Words or phrases; a * ends a prefix."
    )
    regex: str | None = Field(
        default=None, description="A regular expression, searched case-insensitively."
    )

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        return _parsed_keywords(keywords)

    @field_validator("regex")
    @classmethod
    def _guarded(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                compile_guarded(regex)
            except RegexCost as exc:
                raise ValueError(f"the regex {exc}") from None
        return regex

    @model_validator(mode="after")
    def _something(self) -> BotMatch:
        if not self.keywords and self.regex is None:
            raise ValueError("give keywords, a regex or both")
        return self

    @cached_property
    def parsed_keywords(self) -> tuple[Keyword, ...]:
        return tuple(Keyword.parse(keyword) for keyword in self.keywords)

    @cached_property
    def compiled(self) -> re.Pattern[str] | None:
        return compile_guarded(self.regex)[0] if self.regex is not None else None

    @cached_property
    def cost(self) -> int:
        return compile_guarded(self.regex)[1] if self.regex is not None else 0


class BotRule(ConfigModel):
    match: BotMatch = Field(description="When the rule answers; the first matching rule wins.")
    answer: LocalizedText = Field(description="The bot's answer.")
    buttons: tuple[BotChoice, ...] = Field(
        default=(), max_length=MAX_CHOICES, description="Choices offered with the answer."
    )


class BotMenu(ConfigModel):
    text: LocalizedText = Field(description="Shown with the items as buttons.")
    items: tuple[BotChoice, ...] = Field(
        max_length=MAX_CHOICES, description="The menu's choices, in order; at least one."
    )

    @model_validator(mode="after")
    def _has_items(self) -> BotMenu:
        # Checked here, not with min_length, so that a bad item is not also reported as
        # "0 items" (pydantic counts only the items that validated).
        if not self.items:
            raise ValueError("a menu needs at least one item")
        return self


class BotHandover(ConfigModel):
    on_keywords: tuple[str, ...] = Field(
        default=(), max_length=MAX_KEYWORDS, description="Keywords that ask for an operator."
    )
    after_s: float | None = Field(
        default=None,
        gt=0,
        le=7 * 86_400,
        description="Hand over this long after the customer's first message, whatever happens.",
    )
    after_misses: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Hand over after this many messages in a row the bot did not understand.",
    )
    text: LocalizedText | None = Field(
        default=None, description="Told to the customer when the bot hands over."
    )

    @field_validator("on_keywords")
    @classmethod
    def _keywords(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        return _parsed_keywords(keywords)

    @cached_property
    def parsed_keywords(self) -> tuple[Keyword, ...]:
        return tuple(Keyword.parse(keyword) for keyword in self.on_keywords)


class BotConfig(ConfigModel):
    enabled: bool = Field(default=True, description="false: the bot is off, the file keeps it.")
    rules: tuple[BotRule, ...] = Field(
        default=(), max_length=200, description="Tried in order; the first that matches answers."
    )
    menu: BotMenu | None = Field(default=None, description="A menu of choices as buttons.")
    handover: BotHandover = Field(
        default_factory=BotHandover, description="When the bot gives the dialog to operators."
    )
    fallback: LocalizedText | None = Field(
        default=None,
        description="Answer to a message no rule understands; without it, such a message "
        "hands the dialog over.",
    )

    @model_validator(mode="after")
    def _line_cost(self) -> BotConfig:
        total = sum(rule.match.cost for rule in self.rules)
        if total > MAX_LINE_COST:
            raise ValueError(
                f"the rules' regexes together may take {total:,} steps on one message, more "
                f"than {MAX_LINE_COST:,}: use keywords for some, or bound their repeats"
            )
        return self
