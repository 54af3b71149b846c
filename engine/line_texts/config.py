"""The ``messages`` section of a line's file: what the line says on its own, and when.

Every part is optional; a part left out is off. ``docs/line-messages.md`` is the reference
of every field, with worked examples. Texts are ``LocalizedText`` (``languages``) with the
placeholders of ``templates``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.config import ConfigModel
from engine.events import RatingScale
from engine.line_texts.languages import LocalizedText, check_label
from engine.line_texts.templates import Placeholder, check_template

MAX_DELAY_S = 30 * 86_400


def _text(value: str) -> LocalizedText:
    return LocalizedText.of(value)


class GreetingConfig(ConfigModel):
    when: Literal["first_dialog", "every_dialog"] = Field(
        default="first_dialog",
        description="first_dialog: a customer's first dialog on the line only; every_dialog.",
    )
    text: LocalizedText = Field(description="Sent when the dialog opens, before routing.")


class ConsentConfig(ConfigModel):
    text: LocalizedText = Field(description="The request for consent to process personal data.")
    required_before_routing: bool = Field(
        default=False,
        description="true: no dialog of the customer is routed until they consent.",
    )
    accept_label: LocalizedText = Field(
        default_factory=lambda: _text("✅"), description="The button that gives consent."
    )
    decline_label: LocalizedText = Field(
        default_factory=lambda: _text("❌"), description="The button that refuses it."
    )
    accepted_text: LocalizedText | None = Field(
        default=None, description="Sent when the customer consents."
    )
    declined_text: LocalizedText | None = Field(
        default=None, description="Sent when the customer refuses."
    )

    @field_validator("accept_label", "decline_label")
    @classmethod
    def _labels(cls, label: LocalizedText) -> LocalizedText:
        return check_label(label)


class ClosingConfig(ConfigModel):
    text: LocalizedText = Field(description="Sent when the dialog is finished.")


class AutoCloseConfig(ConfigModel):
    after_s: float = Field(
        gt=0,
        le=MAX_DELAY_S,
        description="Close a dialog whose customer has not written this long after a reply.",
    )
    text: LocalizedText | None = Field(default=None, description="Sent when it closes so.")


class RatingConfig(ConfigModel):
    scale: RatingScale = Field(
        default="like_dislike", description="like_dislike: 👍/👎; five: 1 to 5."
    )
    text: LocalizedText = Field(description="The request, sent after the dialog is finished.")
    like_label: LocalizedText = Field(
        default_factory=lambda: _text("👍"), description="like_dislike: the like button."
    )
    dislike_label: LocalizedText = Field(
        default_factory=lambda: _text("👎"), description="like_dislike: the dislike button."
    )
    thanks_text: LocalizedText | None = Field(
        default=None, description="Sent when a rating is received."
    )

    @field_validator("like_label", "dislike_label")
    @classmethod
    def _labels(cls, label: LocalizedText) -> LocalizedText:
        return check_label(label)


class FollowUpConfig(ConfigModel):
    after_s: float = Field(
        gt=0, le=MAX_DELAY_S, description="Since the reply the customer has not answered."
    )
    text: LocalizedText = Field(description="The reminder.")


class KpiConfig(ConfigModel):
    first_answer_s: float | None = Field(
        default=None, gt=0, le=MAX_DELAY_S, description="Longest wait for a dialog's first answer."
    )
    next_answer_s: float | None = Field(
        default=None, gt=0, le=MAX_DELAY_S, description="Longest wait for any later answer."
    )

    @model_validator(mode="after")
    def _one_limit(self) -> KpiConfig:
        if self.first_answer_s is None and self.next_answer_s is None:
            raise ValueError("set first_answer_s, next_answer_s or both")
        return self


class MessagesConfig(ConfigModel):
    placeholder_defaults: dict[Placeholder, LocalizedText] = Field(
        default_factory=dict,
        description="What a placeholder becomes when its value is unknown (else nothing).",
    )
    greeting: GreetingConfig | None = Field(default=None, description="Off when absent.")
    consent: ConsentConfig | None = Field(default=None, description="Off when absent.")
    closing: ClosingConfig | None = Field(default=None, description="Off when absent.")
    auto_close: AutoCloseConfig | None = Field(default=None, description="Off when absent.")
    rating: RatingConfig | None = Field(default=None, description="Off when absent.")
    follow_ups: tuple[FollowUpConfig, ...] = Field(
        default=(), max_length=10, description="Reminders to a silent customer, in order."
    )
    kpi: KpiConfig | None = Field(default=None, description="Off when absent.")

    @field_validator("placeholder_defaults")
    @classmethod
    def _defaults_are_plain(
        cls, defaults: dict[Placeholder, LocalizedText]
    ) -> dict[Placeholder, LocalizedText]:
        for name, text in defaults.items():
            for value in text.root.values():
                try:
                    check_template(value, frozenset())
                except ValueError as exc:
                    raise ValueError(f"{name}: a default holds no placeholder ({exc})") from None
        return defaults

    @field_validator("follow_ups")
    @classmethod
    def _reminders_in_order(
        cls, follow_ups: tuple[FollowUpConfig, ...]
    ) -> tuple[FollowUpConfig, ...]:
        delays = [follow_up.after_s for follow_up in follow_ups]
        if any(later <= earlier for earlier, later in pairwise(delays)):
            raise ValueError("each after_s must be longer than the one before")
        return follow_ups

    @model_validator(mode="after")
    def _reminders_before_closing(self) -> MessagesConfig:
        last = self.follow_ups[-1].after_s if self.follow_ups else None
        if self.auto_close is not None and last is not None and last >= self.auto_close.after_s:
            raise ValueError(
                "follow_ups: every after_s must be shorter than auto_close.after_s, "
                "or the dialog closes before the reminder"
            )
        return self
