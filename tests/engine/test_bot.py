"""The bot before operators: a pure state machine over given times (``docs/bot.md``).

The line is the example of ``docs/bot.md``, loaded from the page itself, so the page's worked
examples are these tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.keyboards import render_buttons
from engine.bot.session import BotSession, BotState, BotStep
from engine.buttons.press import CustomerInput
from engine.line_texts.render import TextContext
from engine.line_texts.sections import LineTexts, parse_line_sections
from engine.line_texts.templates import TextValues

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = re.findall(r"```yaml\n(.*?)```", (DOCS / "bot.md").read_text(encoding="utf-8"), re.S)[0]
RU = TextContext("ru", TextValues(customer_name="Анна"))
EN = TextContext("en", TextValues(customer_name="Anna"))
MENU_RU = ["🚚 Доставка", "💳 Оплата", "👤 Оператор"]


def session(text: str = EXAMPLE) -> BotSession:
    bot = LineTexts.build(parse_line_sections(text, "line.yaml")).bot
    assert bot is not None
    return bot


@pytest.fixture
def bot() -> BotSession:
    return session()


def say(bot: BotSession, state: BotState, text: str | None = None, *, at: float = 10.0,
        payload: str | None = None, context: TextContext = RU) -> BotStep:  # fmt: skip
    return bot.on_message(state, CustomerInput(text=text, payload=payload), at, context)


def labels(step: BotStep) -> list[str]:
    (reply,) = step.replies
    return [button.label for button in reply.keyboard.buttons] if reply.keyboard else []


def test_a_first_message_nothing_matches_gets_the_menu(bot: BotSession) -> None:
    step = say(bot, bot.start(0.0), "Здравствуйте")
    assert step.handover is None
    assert [reply.text for reply in step.replies] == ["Чем помочь, Анна?"]
    assert labels(step) == MENU_RU
    assert step.state.offered == "m" and step.state.turns == 1 and step.state.misses == 0


def test_a_rule_answers_with_the_menus_buttons(bot: BotSession) -> None:
    step = say(bot, bot.start(0.0), "Когда будет доставка?")
    assert step.replies[0].text == "Доставка по Москве — 1 день, по России — 2–5 дней."
    assert labels(step) == MENU_RU
    english = say(bot, bot.start(0.0), "What about shipping?", context=EN)
    assert english.replies[0].text.startswith("Delivery takes 1 day")
    assert labels(english) == ["🚚 Delivery", "💳 Payment", "👤 Operator"]


def test_a_menu_item_is_chosen_by_press_label_or_number(bot: BotSession) -> None:
    menu = say(bot, bot.start(0.0), "Здравствуйте")
    (reply,) = menu.replies
    assert reply.keyboard is not None
    payment = reply.keyboard.buttons[1]
    for chosen in (
        say(bot, menu.state, payment.label, payload=payment.payload),  # Telegram, VK
        say(bot, menu.state, "💳 оплата"),  # Viber's ActionBody, or typed
        say(bot, menu.state, "2"),  # the numbered text of a channel without buttons
    ):
        assert chosen.replies[0].text == "Принимаем карты и СБП." and chosen.handover is None
        assert labels(chosen) == MENU_RU


@pytest.mark.parametrize("opening", ["Здравствуйте", "Заказ 12345"])
def test_every_offered_button_is_chosen_alike_by_press_label_and_number(
    bot: BotSession, opening: str
) -> None:
    offered = say(bot, bot.start(0.0), opening)
    (reply,) = offered.replies
    assert reply.keyboard is not None
    for number, button in enumerate(reply.keyboard.buttons, 1):
        pressed = say(bot, offered.state, button.label, payload=button.payload)
        assert say(bot, offered.state, button.label) == pressed
        assert say(bot, offered.state, str(number)) == pressed
        assert pressed.replies or pressed.handover


def test_a_rule_offers_its_own_buttons(bot: BotSession) -> None:
    order = say(bot, bot.start(0.0), "Заказ № 123456")
    assert order.replies[0].text.startswith("Статус заказа")
    assert labels(order) == ["👤 Позвать оператора", "📋 Меню"]
    assert order.state.offered == "r1"
    (reply,) = order.replies
    assert render_buttons("custom", reply.text, reply.keyboard).text.endswith(
        "1. 👤 Позвать оператора\n2. 📋 Меню"
    )
    back_to_menu = say(bot, order.state, "2")
    assert back_to_menu.replies[0].text == "Чем помочь, Анна?" and labels(back_to_menu) == MENU_RU
    handed = say(bot, order.state, "1")
    assert handed.handover == "requested"
    assert [r.text for r in handed.replies] == ["Соединяю с оператором, подождите немного."]


def test_a_handover_keyword_asks_for_an_operator(bot: BotSession) -> None:
    step = say(bot, bot.start(0.0), "Можно живого ЧЕЛОВЕКА?")
    assert step.handover == "requested" and step.state.phase == "handed_over"
    assert step.state.handover_reason == "requested" and step.replies[0].keyboard is None


def test_misses_fall_back_then_hand_over(bot: BotSession) -> None:
    first = say(bot, bot.start(0.0), "Здравствуйте")
    miss = say(bot, first.state, "Ыыы")
    assert miss.replies[0].text.startswith("Я не понял вопрос") and labels(miss) == MENU_RU
    assert miss.state.misses == 1 and miss.handover is None
    second = say(bot, miss.state, "Ааа")
    assert second.handover == "no_rule" and second.state.misses == 2
    answered = say(bot, miss.state, "доставка")
    assert answered.state.misses == 0  # an answer resets the count


def test_without_a_fallback_a_miss_hands_over_at_once() -> None:
    bot = session("bot:\n  rules:\n    - match: {keywords: [цена]}\n      answer: '100 ₽'\n")
    step = say(bot, bot.start(0.0), "привет")
    assert step.handover == "no_rule" and step.replies == ()
    assert say(bot, bot.start(0.0), "Какая цена?").replies[0].text == "100 ₽"


def test_the_bots_time_runs_out_on_a_message_or_the_timer(bot: BotSession) -> None:
    state = bot.start(100.0)
    assert bot.wake_at(state) == 700.0
    assert bot.on_timer(state, 699.0, RU) == BotStep(state)
    timed = bot.on_timer(state, 700.0, RU)
    assert timed.handover == "timed_out" and timed.replies[0].text.startswith("Соединяю")
    assert bot.wake_at(timed.state) is None
    late = say(bot, state, "доставка", at=700.0)
    assert late.handover == "timed_out" and late.state.turns == 1


def test_after_the_handover_or_an_operator_the_bot_is_silent(bot: BotSession) -> None:
    handed = say(bot, bot.start(0.0), "оператор").state
    assert say(bot, handed, "доставка") == BotStep(handed)
    assert bot.on_timer(handed, 10**9, RU) == BotStep(handed)
    taken = bot.operator_took(say(bot, bot.start(0.0), "Здравствуйте").state)
    assert taken.phase == "left" and taken.offered is None and bot.wake_at(taken) is None
    assert say(bot, taken, "1") == BotStep(taken)


def test_a_button_of_an_older_file_is_not_another_choice(bot: BotSession) -> None:
    menu = say(bot, bot.start(0.0), "Здравствуйте")
    (reply,) = menu.replies
    assert reply.keyboard is not None
    operator = reply.keyboard.buttons[2].payload
    edited = session(
        EXAMPLE.replace(
            '{ru: "👤 Оператор", en: "👤 Operator"}', '{ru: "👤 Менеджер", en: "👤 Manager"}'
        )
    )
    stale = say(edited, menu.state, "👤 Оператор", payload=operator)
    # Not the renamed item: read as text, "Оператор" is a hand-over keyword all the same.
    assert stale.handover == "requested"
    unknown = say(edited, menu.state, "что-то", payload="ol:bot:m:7:abcdef")
    assert unknown.handover is None and unknown.replies[0].text.startswith("Я не понял")


def test_the_state_is_json_for_durable_storage(bot: BotSession) -> None:
    state = say(bot, say(bot, bot.start(1.5), "Здравствуйте").state, "Ыыы").state
    assert BotState.from_json(state.to_json()) == state
    assert BotState.from_json(state.to_json().encode()) == state


def test_a_disabled_bot_is_no_bot() -> None:
    texts = LineTexts.build(parse_line_sections("bot:\n  enabled: false\n  fallback: '?'\n", "l"))
    assert texts.bot is None


# -- properties: any text, any press, any order of events


def payloads(bot: BotSession) -> list[str]:
    """Every button the bot offers: the menu's and the order rule's."""
    found = []
    for text in ("Здравствуйте", "Заказ 12345"):
        (reply,) = say(bot, bot.start(0.0), text).replies
        assert reply.keyboard is not None
        found += [button.payload for button in reply.keyboard.buttons]
    return found


EXAMPLE_BOT = session()
events = st.lists(
    st.tuples(
        st.sampled_from(["message", "timer"]),
        st.one_of(
            st.none(),
            st.text(max_size=80),
            st.sampled_from(["1", "2", "3", "доставка", "👤 Оператор", "Заказ 12345"]),
        ),
        st.one_of(st.none(), st.sampled_from(payloads(EXAMPLE_BOT)), st.text(max_size=70)),
        st.floats(min_value=0, max_value=300, allow_nan=False),
    ),
    max_size=12,
)


def run(bot: BotSession, script: list[tuple[str, str | None, str | None, float]]) -> list[BotStep]:
    state, now, steps = bot.start(0.0), 0.0, []
    for kind, text, payload, delay in script:
        now += delay
        if kind == "message":
            step = bot.on_message(state, CustomerInput(text=text, payload=payload), now, RU)
        else:
            step = bot.on_timer(state, now, RU)
        steps.append(step)
        state = step.state
    return steps


@given(events)
@settings(max_examples=200, deadline=None)
def test_the_bot_never_raises_and_replays_the_same(
    script: list[tuple[str, str | None, str | None, float]],
) -> None:
    steps = run(EXAMPLE_BOT, script)
    assert steps == run(EXAMPLE_BOT, script)
    handed_over = False
    for (kind, *_), step in zip(script, steps, strict=True):
        assert BotState.from_json(step.state.to_json()) == step.state
        if handed_over:
            assert step.replies == () and step.handover is None
        elif step.handover is not None:
            assert step.state.phase == "handed_over"
            assert step.state.handover_reason == step.handover
        else:  # an active bot answers every message; a timer before its time says nothing
            assert step.state.phase == "active"
            assert bool(step.replies) == (kind == "message")
        handed_over = handed_over or step.handover is not None
        for reply in step.replies:
            assert reply.text.strip()
            for channel in ("telegram", "vk", "viber", "custom"):
                assert render_buttons(channel, reply.text, reply.keyboard).text.strip()
