"""A line's languages, texts per language, and which language a customer gets.

A text is either one string, the same for every language, or a map from language to string,
where ``"*"`` stands for every language the map does not name:

    text: "Hello, {customer_name}!"
    text: {ru: "Здравствуйте, {customer_name}!", en: "Hello, {customer_name}!"}
    text: {ru: "Здравствуйте!", "*": "Hello!"}

The line's ``languages`` section names its default and the languages it supports; a map
must cover each supported language (by name or by ``"*"``) and name no other, so a forgotten
translation is an error at load, not a customer left without a text (``sections``).

The customer's language is the tag their channel sends (Telegram's ``language_code``,
Viber's ``language``; VK sends a number, read here from ``extras["lang_id"]``), matched to a
supported language exactly or by its primary subtag (``en-US`` gets ``en``), else the line's
default. ``docs/line-messages.md``, "Languages".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, RootModel, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from engine.buttons.keyboard import LABEL_MAX_CHARS, visible_label
from engine.config import ConfigModel
from engine.line_texts.templates import check_template
from engine.models import InboundMessage

ANY_LANGUAGE = "*"
LANGUAGE_TAG = r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$"
LanguageTag = Annotated[str, Field(pattern=LANGUAGE_TAG)]
TextKey = Annotated[str, Field(pattern=r"^(?:\*|[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)$")]

VK_LANG_IDS = {"0": "ru", "1": "uk", "3": "en", "4": "es", "6": "de"}
"""VK's ``client_info.lang_id`` numbers for the languages VK names consistently."""


def _checked(text: str) -> str:
    return check_template(text)


TextTemplate = Annotated[str, AfterValidator(_checked)]
TextMap = Annotated[dict[TextKey, TextTemplate], Field(min_length=1)]


class LocalizedText(RootModel[TextMap]):
    """One text in one or more languages; written as a string or a language map."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _plain_string(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A plain string is checked here so that its error names the field itself, not a
        # "*" key the file does not have.
        if isinstance(value, str):
            value = {ANY_LANGUAGE: check_template(value)}
        return handler(value)

    @classmethod
    def of(cls, text: str | dict[str, str]) -> LocalizedText:
        return cls.model_validate(text)

    def pick(self, language: str, default_language: str | None = None) -> str:
        """The text for ``language``: its own, else ``"*"``, else the default language's,
        else the first one written. Never raises."""
        texts: dict[str, str] = self.root
        for key in (language, ANY_LANGUAGE, default_language):
            if key is not None and key in texts:
                return texts[key]
        return next(iter(texts.values()))

    def languages(self) -> frozenset[str]:
        """The languages named, ``"*"`` included."""
        return frozenset(self.root)


def check_label(label: LocalizedText) -> LocalizedText:
    """A button's label: one line of at most ``LABEL_MAX_CHARS`` in every language, and no
    placeholders (a button names a choice, the same for every customer)."""
    for text in label.root.values():
        try:
            check_template(text, frozenset())
        except ValueError as exc:
            raise ValueError(f"a button label holds no placeholders ({exc})") from None
        visible_label(text)
        if len(text) > LABEL_MAX_CHARS:
            raise ValueError(f"a button label is at most {LABEL_MAX_CHARS} characters")
    return label


class LanguagesConfig(ConfigModel):
    default: LanguageTag = Field(description="The language of a customer whose is unknown.")
    supported: tuple[LanguageTag, ...] = Field(
        default=(),
        description="Every language the line's texts are written in; [default] when empty.",
    )

    @model_validator(mode="after")
    def _default_supported(self) -> LanguagesConfig:
        if self.supported and self.default not in self.supported:
            raise ValueError(f"default {self.default!r} is not in supported")
        if len(set(self.supported)) != len(self.supported):
            raise ValueError("supported lists a language twice")
        return self

    @property
    def all(self) -> tuple[str, ...]:
        return self.supported or (self.default,)


def coverage_problem(text: LocalizedText, languages: LanguagesConfig | None) -> str | None:
    """Why ``text`` does not fit the line's languages, or ``None`` when it does."""
    named = text.languages() - {ANY_LANGUAGE}
    if languages is None:
        if named:
            return f"names languages {sorted(named)} but the line has no `languages` section"
        return None
    strangers = sorted(named - set(languages.all))
    if strangers:
        return f"names {strangers}, not in languages.supported {list(languages.all)}"
    missing = sorted(set(languages.all) - named)
    if missing and ANY_LANGUAGE not in text.languages():
        return f'has no text for {missing}: add them, or a "*" text for every other language'
    return None


def choose_language(customer_language: str | None, languages: LanguagesConfig | None) -> str:
    """The supported language closest to ``customer_language``: the same tag, else the same
    primary subtag (``en-GB`` → ``en``, ``pt`` → ``pt-BR``), else the line's default.

    A line without languages answers ``"*"``: its texts are one string each.
    """
    if languages is None:
        return ANY_LANGUAGE
    wanted = (customer_language or "").strip().replace("_", "-").lower()
    if not wanted:
        return languages.default
    by_lower = {tag.lower(): tag for tag in languages.all}
    if wanted in by_lower:
        return by_lower[wanted]
    primary = wanted.split("-", 1)[0]
    if primary in by_lower:
        return by_lower[primary]
    same_primary = [tag for tag in languages.all if tag.lower().split("-", 1)[0] == primary]
    return same_primary[0] if same_primary else languages.default


def language_of(message: InboundMessage) -> str | None:
    """The customer's language tag as their channel tells it, or ``None``."""
    if message.customer.language:
        return message.customer.language
    return VK_LANG_IDS.get(message.extras.get("lang_id", ""))
