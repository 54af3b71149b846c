"""The sections of a line's file that this package reads, loaded and checked as a whole.

A line's file (``routing_rules/<portal>-<line>.yaml``, ``docs/routing.md``) may hold, beside
its routing rules, ``languages``, ``messages`` and ``bot``. ``load_line_sections`` reads
those three and ignores the rest, so it works on the same file the routing rules come from;
errors name the file, the line and the field, like the rules' (``engine.yaml_marks``).

Some checks need two sections at once and run after the fields validate: every text must
cover the line's languages (``languages.coverage_problem``), and the buttons of one keyboard
must have different labels in every language, or a label typed back (or sent by Viber)
would name two buttons.

``LineTexts.build`` turns checked sections into what the dispatcher calls: the renderer,
the line's messages and its bot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from engine.bot.config import BotConfig
from engine.bot.session import BotSession
from engine.buttons.keyboard import fold_label
from engine.config import ConfigModel
from engine.errors import ConfigError
from engine.line_texts.config import MessagesConfig
from engine.line_texts.languages import (
    ANY_LANGUAGE,
    LanguagesConfig,
    LocalizedText,
    coverage_problem,
)
from engine.line_texts.line import LineMessages
from engine.line_texts.render import TextRenderer
from engine.yaml_marks import Marks, format_validation_error, load_yaml, yaml_marks

FieldPath = tuple[str | int, ...]
SECTIONS = ("languages", "messages", "bot")


class LineSections(ConfigModel):
    """``languages``, ``messages`` and ``bot`` of one line's file; every one optional."""

    languages: LanguagesConfig | None = Field(
        default=None, description="The line's languages; texts are one string each without."
    )
    messages: MessagesConfig = Field(
        default_factory=MessagesConfig, description="What the line says on its own."
    )
    bot: BotConfig | None = Field(default=None, description="The bot before operators.")


def parse_line_sections(text: str, source: str) -> LineSections:
    """Validate the three sections of a line's YAML ``text``; ``ConfigError`` names
    ``source:line: field: problem`` for every problem found."""
    data = load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    picked = {key: value for key, value in data.items() if key in SECTIONS}
    try:
        sections = LineSections.model_validate(picked)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, yaml_marks(text))) from None
    check_sections(sections, source, text)
    return sections


def check_sections(sections: LineSections, source: str, text: str) -> None:
    """``ConfigError`` naming ``source:line: field: problem`` for each problem of the checks
    across sections (``problems``); ``text`` is the file the sections were read from."""
    found = problems(sections)
    if found:
        marks = yaml_marks(text)
        raise ConfigError("\n".join(_located(source, marks, path, what) for path, what in found))


def load_line_sections(path: Path) -> LineSections:
    """The sections of the line file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the line's file: {exc}") from None
    return parse_line_sections(text, str(path))


def problems(sections: LineSections) -> list[tuple[FieldPath, str]]:
    """What the field-by-field validation cannot see: texts against the line's languages,
    labels that two buttons of one keyboard share."""
    found = [
        (path, problem)
        for path, text in _texts(sections, ())
        if (problem := coverage_problem(text, sections.languages)) is not None
    ]
    languages = sections.languages.all if sections.languages is not None else (ANY_LANGUAGE,)
    default = sections.languages.default if sections.languages is not None else None
    for labels in _keyboards(sections):
        found.extend(_shared_labels(labels, languages, default))
    return found


@dataclass(frozen=True)
class LineTexts:
    """What the dispatcher holds per line: the renderer, the messages and the bot."""

    renderer: TextRenderer
    messages: LineMessages
    bot: BotSession | None

    @classmethod
    def build(cls, sections: LineSections) -> LineTexts:
        """``ConfigError`` if the sections were not checked and have a problem."""
        found = problems(sections)
        if found:
            raise ConfigError("; ".join(f"{_dotted(path)}: {what}" for path, what in found))
        renderer = TextRenderer(sections.languages, sections.messages.placeholder_defaults)
        bot = sections.bot
        session = BotSession(bot, renderer) if bot is not None and bot.enabled else None
        return cls(renderer, LineMessages(sections.messages, renderer), session)


def _texts(value: object, path: FieldPath) -> Iterator[tuple[FieldPath, LocalizedText]]:
    if isinstance(value, LocalizedText):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _texts(getattr(value, name), (*path, name))
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _texts(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, (*path, str(key)))


def _keyboards(sections: LineSections) -> Iterator[list[tuple[FieldPath, LocalizedText]]]:
    """The labels of each keyboard the line can show, with their paths."""
    consent = sections.messages.consent
    if consent is not None:
        at = ("messages", "consent")
        yield [((*at, "accept_label"), consent.accept_label),
               ((*at, "decline_label"), consent.decline_label)]  # fmt: skip
    rating = sections.messages.rating
    if rating is not None and rating.scale == "like_dislike":
        at = ("messages", "rating")
        yield [((*at, "like_label"), rating.like_label),
               ((*at, "dislike_label"), rating.dislike_label)]  # fmt: skip
    bot = sections.bot
    if bot is None:
        return
    if bot.menu is not None:
        items = bot.menu.items
        yield [(("bot", "menu", "items", i, "label"), item.label) for i, item in enumerate(items)]
    for r, rule in enumerate(bot.rules):
        buttons_at = ("bot", "rules", r, "buttons")
        yield [((*buttons_at, i, "label"), b.label) for i, b in enumerate(rule.buttons)]


def _shared_labels(
    labels: list[tuple[FieldPath, LocalizedText]], languages: tuple[str, ...], default: str | None
) -> Iterator[tuple[FieldPath, str]]:
    for language in languages:
        seen: dict[str, FieldPath] = {}
        for path, label in labels:
            folded = fold_label(label.pick(language, default))
            if folded in seen:
                where = "" if language == ANY_LANGUAGE else f" in {language!r}"
                yield path, f"same label as {_dotted(seen[folded])}{where}"
            else:
                seen[folded] = path


def _dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)


def _located(source: str, marks: Marks, path: FieldPath, what: str) -> str:
    probe = path
    while probe and probe not in marks:
        probe = probe[:-1]
    line = marks.get(probe)
    where = f"{source}:{line}" if line is not None else source
    return f"{where}: {_dotted(path)}: {what}"
