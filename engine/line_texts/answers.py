"""Reading a customer's answer to the line's questions: consent and rating.

An answer is a press of one of the question's buttons (its payload, or its label or number
typed back: ``engine.buttons``), or free text in Russian or English, compared whole after
folding case, spacing, ``ё`` and trailing punctuation ("Да!" is "да"). A message that only
contains an answer among other words ("да, но сначала вопрос") is not one: the line would
rather ask again than guess. Anything else is ``None``, "not an answer", and the dialog
goes on as if no question were pending. ``docs/line-messages.md``, "Answers".
"""

from __future__ import annotations

import re

from engine.buttons.keyboard import Keyboard, fold_label, make_payload
from engine.buttons.press import CustomerInput
from engine.events import AnswerVia, RatingScale
from engine.models import Frozen

CONSENT_YES = make_payload("consent", "yes")
CONSENT_NO = make_payload("consent", "no")
RATE_LIKE = make_payload("rate", "like")
RATE_DISLIKE = make_payload("rate", "dislike")
RATE_FIVE = tuple(make_payload("rate", str(score)) for score in range(1, 6))

_YES = frozenset(
    {
        "да", "ага", "конечно", "согласен", "согласна", "согласен(а)", "соглашаюсь",
        "я согласен", "я согласна", "даю согласие", "ок", "хорошо",
        "yes", "y", "yep", "yeah", "sure", "ok", "okay", "agree", "i agree", "accept",
        "👍", "✅", "✔", "☑",
    }
)  # fmt: skip
_NO = frozenset(
    {
        "нет", "неа", "не согласен", "не согласна", "я не согласен", "я не согласна",
        "отказываюсь", "не даю согласие", "не даю согласия",
        "no", "n", "nope", "disagree", "i disagree", "i do not agree", "i don't agree",
        "i don’t agree",
        "decline", "👎", "❌", "✖",
    }
)  # fmt: skip
_LIKE = frozenset(
    {
        "👍", "❤", "😊", "🙂", "лайк", "нравится", "понравилось", "хорошо", "отлично",
        "супер", "да", "like", "good", "great", "yes",
    }
)  # fmt: skip
_DISLIKE = frozenset(
    {
        "👎", "😞", "🙁", "дизлайк", "не нравится", "не понравилось", "плохо", "ужасно",
        "нет", "dislike", "bad", "poor", "no",
    }
)  # fmt: skip
_NUMBER_WORDS = {
    "один": 1, "одна": 1, "единица": 1, "кол": 1, "one": 1,
    "два": 2, "две": 2, "двойка": 2, "two": 2,
    "три": 3, "тройка": 3, "three": 3,
    "четыре": 4, "четверка": 4, "four": 4,
    "пять": 5, "пятерка": 5, "five": 5,
}  # fmt: skip
_SCORE = re.compile(
    r"^(?P<score>[1-5])(?:\s*(?:/|из|out of)\s*5)?"
    r"(?:\s*(?:звезд[аы]?|балл(?:а|ов)?|stars?|points?|⭐|★))?$"
)
_STARS = re.compile(r"^(?:⭐|★|\*){1,5}$")
_KEYCAPS = {f"{digit}\u20e3": int(digit) for digit in "12345"}


class ConsentAnswer(Frozen):
    given: bool
    via: AnswerVia


class RatingAnswer(Frozen):
    """A rating: ``five`` scores 1-5; ``like_dislike`` scores 1 (like) or 0 (dislike)."""

    scale: RatingScale
    score: int
    via: AnswerVia


def parse_consent(answer: CustomerInput, keyboard: Keyboard | None = None) -> ConsentAnswer | None:
    """Consent given or refused, or ``None`` when ``answer`` is neither."""
    pressed = answer.choice(keyboard) if keyboard is not None else answer.payload
    if pressed in (CONSENT_YES, CONSENT_NO):
        return ConsentAnswer(given=pressed == CONSENT_YES, via="button")
    folded = fold_label(answer.text or "")
    if folded in _YES or folded in _NO:
        return ConsentAnswer(given=folded in _YES, via="text")
    return None


def parse_rating(
    answer: CustomerInput, scale: RatingScale, keyboard: Keyboard | None = None
) -> RatingAnswer | None:
    """The rating on ``scale`` that ``answer`` gives, or ``None``."""
    pressed = answer.choice(keyboard) if keyboard is not None else answer.payload
    score = _score_of_payload(pressed, scale)
    if score is not None:
        return RatingAnswer(scale=scale, score=score, via="button")
    folded = fold_label(answer.text or "")
    score = _five_of_text(folded) if scale == "five" else _like_of_text(folded)
    return RatingAnswer(scale=scale, score=score, via="text") if score is not None else None


def _score_of_payload(payload: str | None, scale: RatingScale) -> int | None:
    if payload is None:
        return None
    if scale == "like_dislike":
        return {RATE_LIKE: 1, RATE_DISLIKE: 0}.get(payload)
    return RATE_FIVE.index(payload) + 1 if payload in RATE_FIVE else None


def _like_of_text(folded: str) -> int | None:
    if folded in _LIKE:
        return 1
    if folded in _DISLIKE:
        return 0
    return None


def _five_of_text(folded: str) -> int | None:
    if folded in _NUMBER_WORDS:
        return _NUMBER_WORDS[folded]
    if folded in _KEYCAPS:
        return _KEYCAPS[folded]
    if _STARS.match(folded):
        return len(folded)
    found = _SCORE.match(folded)
    return int(found["score"]) if found else None
