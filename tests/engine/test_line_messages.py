"""The line's own messages as the dispatcher uses them: what to send, answers read back,
reminders, auto-close and KPI alerts from given times (``docs/line-messages.md``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.keyboards import render_buttons
from engine.buttons.press import CustomerInput
from engine.events import RatingScale
from engine.line_texts.answers import (
    CONSENT_NO,
    CONSENT_YES,
    RATE_DISLIKE,
    RATE_FIVE,
    RATE_LIKE,
    parse_consent,
    parse_rating,
)
from engine.line_texts.line import LineMessages
from engine.line_texts.render import TextContext
from engine.line_texts.sections import LineTexts, parse_line_sections
from engine.line_texts.templates import TextValues
from engine.line_texts.timers import (
    AnswerWait,
    AutoCloseDue,
    CustomerSilence,
    FollowUpDue,
    KpiBreach,
)

LINE = """\
languages: {default: ru, supported: [ru, en]}
messages:
  placeholder_defaults:
    operator_name: {ru: "оператор", en: "our operator"}
  greeting:
    when: first_dialog
    text: {ru: "Здравствуйте, {customer_name}!", en: "Hello, {customer_name}!"}
  consent:
    required_before_routing: true
    text: {ru: "Согласны?", en: "Do you agree?"}
    accept_label: {ru: "✅ Согласен", en: "✅ I agree"}
    decline_label: {ru: "❌ Нет", en: "❌ No"}
    accepted_text: {ru: "Спасибо!", en: "Thank you!"}
  closing:
    text: "🙏"
  rating:
    scale: like_dislike
    text: {ru: "Как вам {operator_name}?", en: "How was {operator_name}?"}
    thanks_text: {ru: "Спасибо за оценку!", en: "Thanks!"}
  follow_ups:
    - {after_s: 60, text: {ru: "Вы здесь?", en: "Still there?"}}
    - {after_s: 120, text: {ru: "Напомню ещё раз", en: "Once more"}}
  auto_close: {after_s: 300, text: {ru: "Закрыли.", en: "Closed."}}
  kpi: {first_answer_s: 30, next_answer_s: 90}
"""


@pytest.fixture
def messages() -> LineMessages:
    return LineTexts.build(parse_line_sections(LINE, "line.yaml")).messages


RU = TextContext("ru", TextValues(customer_name="Анна", operator_name="Борис"))
EN = TextContext("en", TextValues(customer_name="Anna"))


def test_the_greeting_goes_to_a_first_dialog_only_unless_every_dialog(
    messages: LineMessages,
) -> None:
    first = messages.greeting(RU, first_dialog=True)
    assert first is not None and first.text == "Здравствуйте, Анна!" and first.keyboard is None
    assert messages.greeting(RU, first_dialog=False) is None
    every = LineTexts.build(
        parse_line_sections("messages:\n  greeting: {when: every_dialog, text: '👋'}\n", "l")
    ).messages
    assert every.greeting(EN, first_dialog=False) is not None


def test_consent_blocks_routing_until_given(messages: LineMessages) -> None:
    assert messages.consent_needed("unknown") and messages.consent_needed("declined")
    assert not messages.consent_needed("given")
    assert not messages.routing_allowed("unknown") and not messages.routing_allowed("declined")
    assert messages.routing_allowed("given")
    optional = LineTexts.build(
        parse_line_sections("messages:\n  consent: {text: 'OK?'}\n", "l")
    ).messages
    assert optional.routing_allowed("unknown") and optional.consent_needed("unknown")
    nothing = LineTexts.build(parse_line_sections("", "l")).messages
    assert nothing.routing_allowed("unknown") and not nothing.consent_needed("unknown")
    assert (
        nothing.consent_request(RU) is None
        and nothing.read_consent(CustomerInput("да"), "ru") is None
    )


def test_the_consent_request_carries_its_buttons_in_the_customers_language(
    messages: LineMessages,
) -> None:
    request = messages.consent_request(EN)
    assert request is not None and request.text == "Do you agree?"
    assert request.keyboard is not None
    assert [(b.label, b.payload) for b in request.keyboard.buttons] == [
        ("✅ I agree", CONSENT_YES),
        ("❌ No", CONSENT_NO),
    ]
    assert render_buttons("custom", request.text, request.keyboard).text == (
        "Do you agree?\n\n1. ✅ I agree\n2. ❌ No"
    )


@pytest.mark.parametrize(
    ("answer", "given_", "via"),
    [
        (CustomerInput(payload=CONSENT_YES), True, "button"),
        (CustomerInput(text="❌ Нет", payload=CONSENT_NO), False, "button"),
        (CustomerInput(text="✅ Согласен"), True, "button"),  # Viber: the label as text
        (CustomerInput(text="2"), False, "button"),  # the number of a numbered option
        (CustomerInput(text="  Да! "), True, "text"),
        (CustomerInput(text="СОГЛАСНА"), True, "text"),
        (CustomerInput(text="yes"), True, "text"),
        (CustomerInput(text="👍"), True, "text"),
        (CustomerInput(text="не согласен"), False, "text"),
        (CustomerInput(text="No."), False, "text"),
    ],
)
def test_consent_is_read_from_a_press_a_label_or_free_text(
    messages: LineMessages, answer: CustomerInput, given_: bool, via: str
) -> None:
    read = messages.read_consent(answer, "ru")
    assert read is not None and (read.given, read.via) == (given_, via)


@pytest.mark.parametrize("text", ["да, но сначала вопрос", "где мой заказ?", "", "3", "ok ok"])
def test_a_message_that_is_not_a_consent_answer_is_none(messages: LineMessages, text: str) -> None:
    assert messages.read_consent(CustomerInput(text=text), "ru") is None
    assert messages.read_consent(CustomerInput(), "ru") is None


def test_the_consent_reply_thanks_or_stays_silent(messages: LineMessages) -> None:
    given_answer = messages.read_consent(CustomerInput(text="да"), "ru")
    refused = messages.read_consent(CustomerInput(text="нет"), "ru")
    assert given_answer is not None and refused is not None
    reply = messages.consent_reply(given_answer, RU)
    assert reply is not None and reply.text == "Спасибо!"
    assert messages.consent_reply(refused, RU) is None  # no declined_text in this line


def test_closing_and_the_rating_request_after_finish(messages: LineMessages) -> None:
    closing = messages.closing(EN)
    assert closing is not None and closing.text == "🙏"
    request = messages.rating_request(EN)
    assert request is not None and request.text == "How was our operator?"
    assert request.keyboard is not None
    assert [b.payload for b in request.keyboard.buttons] == [RATE_LIKE, RATE_DISLIKE]
    named = messages.rating_request(RU)
    assert named is not None and named.text == "Как вам Борис?"


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        (CustomerInput(payload=RATE_LIKE), 1),
        (CustomerInput(payload=RATE_DISLIKE), 0),
        (CustomerInput(text="👎"), 0),
        (CustomerInput(text="Понравилось!"), 1),
        (CustomerInput(text="bad"), 0),
        (CustomerInput(text="1"), 1),  # numbered option 1 is the like button
        (CustomerInput(text="2"), 0),
    ],
)
def test_a_like_or_dislike_is_read(
    messages: LineMessages, answer: CustomerInput, score: int
) -> None:
    read = messages.read_rating(answer, "ru")
    assert read is not None and (read.scale, read.score) == ("like_dislike", score)


FIVE = [
    ("5", 5),
    ("5/5", 5),
    ("4 из 5", 4),
    ("3 звезды", 3),
    ("5 stars", 5),
    ("пять", 5),
    ("Четыре!", 4),
    ("two", 2),
    ("⭐⭐⭐", 3),
    ("⭐️⭐️⭐️⭐️⭐️", 5),
    ("***", 3),
    ("5️⃣", 5),
    ("1⭐", 1),
]


@pytest.mark.parametrize(("text", "score"), FIVE)
def test_a_score_from_one_to_five_is_read_from_text(text: str, score: int) -> None:
    read = parse_rating(CustomerInput(text=text), "five")
    assert read is not None and (read.score, read.via) == (score, "text")


@pytest.mark.parametrize(
    "text", ["6", "0", "10", "5 минут жду!", "⭐⭐⭐⭐⭐⭐", "пятьсот", "👍", ""]
)
def test_what_is_not_a_score_is_none(text: str) -> None:
    assert parse_rating(CustomerInput(text=text), "five") is None


def test_a_five_scale_press_round_trips_for_every_button() -> None:
    texts = LineTexts.build(
        parse_line_sections("messages:\n  rating: {scale: five, text: 'Оцените от 1 до 5'}\n", "l")
    )
    request = texts.messages.rating_request(TextContext("*"))
    assert request is not None and request.keyboard is not None
    assert [b.label for b in request.keyboard.buttons] == ["1", "2", "3", "4", "5"]
    assert render_buttons("custom", request.text, request.keyboard).text.endswith(
        "1 · 2 · 3 · 4 · 5"
    )
    for score, button in enumerate(request.keyboard.buttons, 1):
        assert button.payload == RATE_FIVE[score - 1]
        by_press = texts.messages.read_rating(CustomerInput(payload=button.payload), "*")
        by_label = texts.messages.read_rating(CustomerInput(text=button.label), "*")
        assert by_press is not None and by_press.score == score and by_press.via == "button"
        assert by_label is not None and by_label.score == score


def test_a_press_of_another_questions_button_is_not_an_answer() -> None:
    assert parse_rating(CustomerInput(payload=CONSENT_YES), "five") is None
    assert parse_rating(CustomerInput(payload=RATE_LIKE), "five") is None
    assert parse_consent(CustomerInput(payload=RATE_FIVE[4])) is None


@given(
    st.text(max_size=300),
    st.none() | st.text(max_size=70),
    st.sampled_from(["five", "like_dislike"]),
)
def test_reading_an_answer_never_raises(text: str, payload: str | None, scale: RatingScale) -> None:
    answer = CustomerInput(text=text, payload=payload)
    rating = parse_rating(answer, scale)
    assert rating is None or (0 <= rating.score <= 5 and rating.scale == scale)
    parse_consent(answer)


# -- silence: reminders and auto-close


def test_reminders_fall_due_in_order_then_the_dialog_closes(messages: LineMessages) -> None:
    silence = CustomerSilence(since=1000.0)
    assert messages.silence_wake_at(silence) == 1060.0
    assert messages.silence_due(silence, 1059.9) is None
    due = messages.silence_due(silence, 1060.0)
    assert due == FollowUpDue(0)
    reply = messages.silence_reply(due, EN)
    assert reply is not None and reply.text == "Still there?"
    after_first = CustomerSilence(since=1000.0, follow_ups_sent=1)
    assert messages.silence_wake_at(after_first) == 1120.0
    assert messages.silence_due(after_first, 1100.0) is None
    assert messages.silence_due(after_first, 1120.0) == FollowUpDue(1)
    after_both = CustomerSilence(since=1000.0, follow_ups_sent=2)
    assert messages.silence_wake_at(after_both) == 1300.0
    closing = messages.silence_due(after_both, 1300.0)
    assert closing == AutoCloseDue()
    reply = messages.silence_reply(closing, RU)
    assert reply is not None and reply.text == "Закрыли."


def test_after_a_long_stop_one_reminder_is_sent_and_closing_wins(messages: LineMessages) -> None:
    silence = CustomerSilence(since=0.0)
    assert messages.silence_due(silence, 150.0) == FollowUpDue(1)  # not 0 and 1 in a burst
    assert messages.silence_due(silence, 301.0) == AutoCloseDue()


def test_a_line_without_reminders_never_wakes() -> None:
    quiet = LineTexts.build(parse_line_sections("", "l")).messages
    assert quiet.silence_wake_at(CustomerSilence(since=0.0)) is None
    assert quiet.silence_due(CustomerSilence(since=0.0), 10**9) is None
    assert quiet.silence_reply(AutoCloseDue(), EN) is None
    assert quiet.silence_reply(FollowUpDue(3), EN) is None  # the rules changed meanwhile


# -- KPI


def test_a_late_first_answer_is_reported_once(messages: LineMessages) -> None:
    wait = AnswerWait(since=500.0, first=True)
    assert messages.kpi_wake_at(wait) == 530.0
    assert messages.kpi_breach(wait, 529.0) is None
    assert messages.kpi_breach(wait, 545.0) == KpiBreach(
        kind="first_answer", limit_s=30.0, waiting_since=500.0, waited_s=45.0
    )
    alerted = AnswerWait(since=500.0, first=True, alerted=True)
    assert messages.kpi_breach(alerted, 10_000.0) is None and messages.kpi_wake_at(alerted) is None


def test_a_later_answer_has_its_own_limit(messages: LineMessages) -> None:
    wait = AnswerWait(since=0.0, first=False)
    assert messages.kpi_wake_at(wait) == 90.0
    breach = messages.kpi_breach(wait, 90.0)
    assert breach is not None and breach.kind == "next_answer"
    only_first = LineTexts.build(
        parse_line_sections("messages:\n  kpi: {first_answer_s: 10}\n", "l")
    ).messages
    assert only_first.kpi_wake_at(wait) is None and only_first.kpi_breach(wait, 10**6) is None
