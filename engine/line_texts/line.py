"""A line's own messages, as the dispatcher uses them: what to send when, and how to read
the customer's answers. One ``LineMessages`` per line, built from its file's sections.

Every method is pure: it takes the dialog's facts and the time and returns texts to send
(``LineReply``), answers read, or steps due. Storing what was asked and answered (consent
with the contact, a rating with the dialog and its operator), sending, and scheduling the
wake-ups are the dispatcher's. ``docs/line-messages.md``, "How the dispatcher calls it".
"""

from __future__ import annotations

from typing import Literal

from engine.buttons.keyboard import Button, Keyboard
from engine.buttons.press import CustomerInput
from engine.line_texts.answers import (
    CONSENT_NO,
    CONSENT_YES,
    RATE_DISLIKE,
    RATE_FIVE,
    RATE_LIKE,
    ConsentAnswer,
    RatingAnswer,
    parse_consent,
    parse_rating,
)
from engine.line_texts.config import MessagesConfig
from engine.line_texts.render import LineReply, TextContext, TextRenderer
from engine.line_texts.timers import (
    AnswerWait,
    CustomerSilence,
    FollowUpDue,
    KpiBreach,
    SilenceDue,
    kpi_breach,
    kpi_wake_at,
    silence_due,
    silence_wake_at,
)

ConsentStatus = Literal["unknown", "given", "declined"]
"""What the contact's stored answer is: never asked or not answered, given, or refused."""


class LineMessages:
    """The ``messages`` section of one line, ready to send."""

    def __init__(self, config: MessagesConfig, renderer: TextRenderer) -> None:
        self.config = config
        self.renderer = renderer

    # -- greeting and closing

    def greeting(self, context: TextContext, *, first_dialog: bool) -> LineReply | None:
        """The greeting for a dialog that just opened, or ``None``.

        ``first_dialog``: the customer has had no dialog on this line before.
        """
        greeting = self.config.greeting
        if greeting is None or (greeting.when == "first_dialog" and not first_dialog):
            return None
        return LineReply(self.renderer.render(greeting.text, context))

    def closing(self, context: TextContext) -> LineReply | None:
        """Sent when an operator finishes the dialog (before the rating request)."""
        closing = self.config.closing
        return LineReply(self.renderer.render(closing.text, context)) if closing else None

    # -- consent

    def consent_needed(self, status: ConsentStatus) -> bool:
        """Whether to ask the customer for consent in a dialog that opens."""
        return self.config.consent is not None and status != "given"

    def routing_allowed(self, status: ConsentStatus) -> bool:
        """Whether the dialog may be routed to operators now."""
        consent = self.config.consent
        return consent is None or not consent.required_before_routing or status == "given"

    def consent_keyboard(self, language: str) -> Keyboard | None:
        consent = self.config.consent
        if consent is None:
            return None
        pick = self.renderer.pick
        return Keyboard.one_row(
            (
                Button(label=pick(consent.accept_label, language), payload=CONSENT_YES),
                Button(label=pick(consent.decline_label, language), payload=CONSENT_NO),
            )
        )

    def consent_request(self, context: TextContext) -> LineReply | None:
        consent = self.config.consent
        if consent is None:
            return None
        text = self.renderer.render(consent.text, context)
        return LineReply(text, self.consent_keyboard(context.language))

    def read_consent(self, answer: CustomerInput, language: str) -> ConsentAnswer | None:
        """The consent ``answer`` gives, or ``None``: ask only while it is pending."""
        if self.config.consent is None:
            return None
        return parse_consent(answer, self.consent_keyboard(language))

    def consent_reply(self, answer: ConsentAnswer, context: TextContext) -> LineReply | None:
        """What the line says to an answer to its consent request, if anything."""
        consent = self.config.consent
        text = None
        if consent is not None:
            text = consent.accepted_text if answer.given else consent.declined_text
        return LineReply(self.renderer.render(text, context)) if text is not None else None

    # -- rating

    def rating_keyboard(self, language: str) -> Keyboard | None:
        rating = self.config.rating
        if rating is None:
            return None
        if rating.scale == "five":
            return Keyboard.one_row(
                tuple(
                    Button(label=str(score), payload=RATE_FIVE[score - 1]) for score in range(1, 6)
                )
            )
        pick = self.renderer.pick
        return Keyboard.one_row(
            (
                Button(label=pick(rating.like_label, language), payload=RATE_LIKE),
                Button(label=pick(rating.dislike_label, language), payload=RATE_DISLIKE),
            )
        )

    def rating_request(self, context: TextContext) -> LineReply | None:
        """Sent after the dialog is finished, when the line asks for a rating."""
        rating = self.config.rating
        if rating is None:
            return None
        text = self.renderer.render(rating.text, context)
        return LineReply(text, self.rating_keyboard(context.language))

    def read_rating(self, answer: CustomerInput, language: str) -> RatingAnswer | None:
        rating = self.config.rating
        if rating is None:
            return None
        return parse_rating(answer, rating.scale, self.rating_keyboard(language))

    def rating_thanks(self, context: TextContext) -> LineReply | None:
        rating = self.config.rating
        text = rating.thanks_text if rating is not None else None
        return LineReply(self.renderer.render(text, context)) if text is not None else None

    # -- the customer's silence: reminders, auto-close

    def silence_due(self, silence: CustomerSilence, now: float) -> SilenceDue | None:
        return silence_due(self.config, silence, now)

    def silence_wake_at(self, silence: CustomerSilence) -> float | None:
        return silence_wake_at(self.config, silence)

    def silence_reply(self, due: SilenceDue, context: TextContext) -> LineReply | None:
        """The text that goes with a silence step: the reminder, or the auto-close text."""
        if isinstance(due, FollowUpDue):
            follow_ups = self.config.follow_ups
            if not 0 <= due.index < len(follow_ups):  # rules changed under the dialog
                return None
            return LineReply(self.renderer.render(follow_ups[due.index].text, context))
        auto_close = self.config.auto_close
        text = auto_close.text if auto_close is not None else None
        return LineReply(self.renderer.render(text, context)) if text is not None else None

    # -- KPI

    def kpi_breach(self, wait: AnswerWait, now: float) -> KpiBreach | None:
        return kpi_breach(self.config.kpi, wait, now)

    def kpi_wake_at(self, wait: AnswerWait) -> float | None:
        return kpi_wake_at(self.config.kpi, wait)
