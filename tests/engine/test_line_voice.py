"""The line's own messages and its bot in the dispatcher (docs/line-messages.md, docs/bot.md):
greeting, consent gate, bot hand-overs, the bot leaving, rating, reminders and auto-close,
KPI alerts, and a restart in the middle of it all. Pure: time in plain numbers, no store."""

from __future__ import annotations

from typing import Any

import pytest

from engine.buttons.keyboard import Keyboard
from engine.buttons.press import CustomerInput
from engine.models import OutboundText
from engine.routing.plan import Notice
from engine.routing.state import DialogState
from engine.routing.voice import Heard
from engine.routing.workflow import ReplyConditions
from engine.store.records import Conversation, InboxRow
from tests.engine.routing_kit import Kit, line_rules, portal_rules

CONVERSATION = Conversation("support", "tg", "telegram", "42", "42")
CONSENT = {
    "required_before_routing": True,
    "text": "May we process your personal data?",
    "accept_label": "✅ Yes",
    "decline_label": "❌ No",
    "accepted_text": "Thank you!",
    "declined_text": "We cannot go on without it.",
}
BOT = {
    "rules": [
        {"match": {"keywords": ["deliver*"]}, "answer": "Delivery takes a day."},
    ],
    "menu": {
        "text": "How can I help, {customer_name}?",
        "items": [
            {"label": "🚚 Delivery", "answer": "Delivery takes a day."},
            {"label": "👤 Operator", "handover": True},
        ],
    },
    "handover": {
        "on_keywords": ["operator"],
        "after_s": 600,
        "after_misses": 2,
        "text": "Connecting you to an operator.",
    },
    "fallback": "Sorry, I did not understand.",
}


def texts_of(kit: Kit) -> list[str]:
    return [notice.text for notice in kit.said]


def buttons(notice: Notice) -> list[tuple[str, str]]:
    assert notice.keyboard is not None
    return [(button.label, button.payload) for button in notice.keyboard.buttons]


def reply(kit: Kit, dialog: DialogState, operator: str = "a", text: str = "Hi") -> None:
    kit.workflow.reply(
        dialog.dialog_id, operator, OutboundText(text=text), kit.now, ReplyConditions()
    )
    kit.collect()


def finish(kit: Kit, dialog: DialogState) -> None:
    kit.dispatcher.finish(dialog.dialog_id, kit.now, "a")
    kit.collect()


def open_dialog(kit: Kit, chat: str, text: str = "hello", **extra: Any) -> DialogState:
    dialog = kit.write(chat, text=text, **extra)
    assert dialog is not None
    return dialog


# -- a line without the sections ------------------------------------------------------------


def test_a_line_without_its_own_messages_says_nothing_and_keeps_no_voice() -> None:
    kit = Kit(line_rules(members=("a",)))
    kit.online("a")

    dialog = open_dialog(kit, "42")

    assert kit.dispatcher.line("support").texts is None  # type: ignore[union-attr]
    assert dialog.voice is None and dialog.held is None and dialog.state == "assigned"
    assert kit.said == []


# -- greeting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "greeted"),
    [
        ("first_dialog", ["Hello, Ann! This is Acme."]),
        ("every_dialog", ["Hello, Ann! This is Acme."] * 2),
    ],
)
def test_the_greeting_goes_to_a_customers_first_dialog_or_to_every_dialog(
    when: str, greeted: list[str]
) -> None:
    greeting = {"when": when, "text": "Hello, {customer_name}! This is {line_name}."}
    kit = Kit(line_rules(members=("a",), messages={"greeting": greeting}), contacts=True)
    kit.online("a")

    first = open_dialog(kit, "42")
    finish(kit, first)
    open_dialog(kit, "42", "again")

    assert texts_of(kit) == greeted
    assert all(notice.origin == "line" and notice.keyboard is None for notice in kit.said)
    assert len({d.dialog_id for d in kit.stored.values()}) == 2


def test_the_greeting_speaks_the_customers_language_with_the_lines_defaults() -> None:
    rules = line_rules(
        members=("a",),
        languages={"default": "ru", "supported": ["ru", "en"]},
        messages={
            "placeholder_defaults": {"customer_name": {"ru": "клиент", "en": "customer"}},
            "greeting": {
                "text": {"ru": "Здравствуйте, {customer_name}!", "en": "Hi, {customer_name}!"}
            },
        },
    )
    kit = Kit(rules)

    open_dialog(kit, "1", language="en-GB")
    open_dialog(kit, "2", language="de")

    assert texts_of(kit) == ["Hi, Ann!", "Здравствуйте, Ann!"]


def test_the_greeting_tells_the_place_the_dialog_takes_in_the_queue() -> None:
    greeting = {"when": "every_dialog", "text": "Hello! You are number {queue_position}."}
    kit = Kit(line_rules(members=("a",), messages={"greeting": greeting}))

    open_dialog(kit, "1")
    open_dialog(kit, "2")

    assert texts_of(kit) == ["Hello! You are number 1.", "Hello! You are number 2."]


def test_the_thanks_for_consent_names_the_operator_who_took_the_dialog() -> None:
    consent = {**CONSENT, "accepted_text": "Thanks! {operator_name} will answer."}
    kit = Kit(line_rules(members=("a",), messages={"consent": consent}), contacts=True)
    kit.online("a")
    kit.workflow.set_profile("a", "Anna")
    kit.collect()
    open_dialog(kit, "1")

    kit.write("1", text="✅ Yes", press="ol:consent:yes")

    assert texts_of(kit)[-1] == "Thanks! Anna will answer."


# -- consent --------------------------------------------------------------------------------


def test_without_consent_the_dialog_is_held_and_a_press_releases_it_into_the_queue() -> None:
    kit = Kit(line_rules(members=("a",), accept=True, messages={"consent": CONSENT}), contacts=True)
    kit.online("a")

    dialog = open_dialog(kit, "42", "да")  # the opening message answers nothing

    assert (dialog.state, dialog.held, dialog.offered_to) == ("waiting", "consent", ())
    assert kit.types("42") == ["dialog.held", "message.received"]
    assert kit.data("dialog.held") == [{"reason": "consent"}]
    (request,) = kit.said
    assert request.text == "May we process your personal data?"
    assert buttons(request) == [("✅ Yes", "ol:consent:yes"), ("❌ No", "ol:consent:no")]
    assert kit.board.waiting_count("support") == 0  # not in the queue

    after = kit.write("42", text="✅ Yes", press="ol:consent:yes")

    assert after is not None and after.state == "offered" and after.held is None
    assert kit.types("42")[2:] == [
        "message.received",
        "dialog.consent",
        "dialog.queued",
        "dialog.offered",
    ]
    assert kit.data("dialog.consent") == [{"given": True, "via": "button"}]
    assert kit.data("dialog.queued", "42") == [
        {"reason": "released", "position": 1, "opens_at": None}
    ]
    assert texts_of(kit)[1:] == ["Thank you!"]
    (stored,) = kit.consents.values()
    assert (stored.contact_id, stored.given, stored.at, stored.dialog_id) == (
        "cnt_42",
        True,
        kit.now,
        dialog.dialog_id,
    )


def test_a_refusal_is_stored_keeps_the_dialog_held_and_a_later_yes_in_words_releases_it() -> None:
    kit = Kit(line_rules(members=("a",), messages={"consent": CONSENT}), contacts=True)
    kit.online("a")
    open_dialog(kit, "42")

    refused = kit.write("42", text="no")
    assert refused is not None and refused.held == "consent"
    assert kit.consents["cnt_42"].given is False
    unclear = kit.write("42", text="yes, but first a question")  # not an answer
    assert unclear is not None and unclear.held == "consent"
    given = kit.write("42", text="Yes!")

    assert given is not None and given.state == "assigned" and given.operator_id == "a"
    assert kit.data("dialog.consent") == [
        {"given": False, "via": "text"},
        {"given": True, "via": "text"},
    ]
    assert texts_of(kit)[1:] == ["We cannot go on without it.", "Thank you!"]


def test_a_customer_who_consented_is_not_asked_again_and_is_routed_at_once() -> None:
    kit = Kit(line_rules(members=("a",), messages={"consent": CONSENT}), contacts=True)
    kit.online("a")
    first = open_dialog(kit, "42")
    kit.write("42", text="✅ Yes", press="ol:consent:yes")
    finish(kit, first)
    kit.said.clear()

    second = open_dialog(kit, "42", "me again")

    assert second.dialog_id != first.dialog_id
    assert (second.state, second.held) == ("assigned", None)
    assert kit.said == []


def test_consent_not_required_is_asked_but_the_dialog_is_routed_at_once() -> None:
    asked = {**CONSENT, "required_before_routing": False}
    kit = Kit(line_rules(members=("a",), messages={"consent": asked}), contacts=True)
    kit.online("a")

    dialog = open_dialog(kit, "42")

    assert (dialog.state, dialog.held) == ("assigned", None)
    assert texts_of(kit) == ["May we process your personal data?"]


# -- the bot --------------------------------------------------------------------------------


def bot_kit(**bot: Any) -> Kit:
    kit = Kit(line_rules(members=("a",), accept=True, bot={**BOT, **bot}), contacts=True)
    kit.online("a")
    return kit


def test_the_bot_answers_first_with_its_menu_and_a_rule_outside_the_queue() -> None:
    kit = bot_kit()

    dialog = open_dialog(kit, "42", "hello")
    kit.write("42", text="when do you deliver?")

    assert (dialog.state, dialog.held) == ("waiting", "bot")
    assert kit.types("42") == ["dialog.held", "message.received", "message.received"]
    menu, rule = kit.said
    assert (menu.text, menu.origin) == ("How can I help, Ann?", "bot")
    assert [label for label, _ in buttons(menu)] == ["🚚 Delivery", "👤 Operator"]
    assert (rule.text, rule.origin) == ("Delivery takes a day.", "bot")
    assert buttons(rule) == buttons(menu)  # a rule without buttons offers the menu's
    assert kit.board.waiting_count("support") == 0


def test_the_bot_hands_over_on_request_and_the_dialog_joins_the_queue() -> None:
    kit = bot_kit()
    open_dialog(kit, "42")
    menu = kit.said[-1]
    operator_button = buttons(menu)[1][1]

    dialog = kit.write("42", text="👤 Operator", press=operator_button)

    assert dialog is not None and (dialog.state, dialog.held) == ("offered", None)
    assert kit.types("42")[-4:] == [
        "message.received",
        "dialog.handed_over",
        "dialog.queued",
        "dialog.offered",
    ]
    assert kit.data("dialog.handed_over") == [{"reason": "requested"}]
    assert kit.said[-1].text == "Connecting you to an operator."


def test_the_bot_hands_over_when_its_time_is_up_by_its_own_timer() -> None:
    kit = bot_kit()
    dialog = open_dialog(kit, "42")
    assert kit.dispatcher.deadline(kit.board.dialogs[dialog.dialog_id]) == kit.now + 600

    kit.advance(599)
    assert kit.dialog_of("42").held == "bot"  # type: ignore[union-attr]
    kit.advance(1)

    assert kit.data("dialog.handed_over") == [{"reason": "timed_out"}]
    assert kit.dialog_of("42").state == "offered"  # type: ignore[union-attr]


def test_the_bot_hands_over_after_misses_in_a_row_and_without_a_fallback_at_once() -> None:
    kit = bot_kit()
    open_dialog(kit, "42")  # the menu
    kit.write("42", text="ыыы")  # a miss: the fallback
    assert kit.said[-1].text == "Sorry, I did not understand."
    kit.write("42", text="ааа")  # the second in a row

    assert kit.data("dialog.handed_over") == [{"reason": "no_rule"}]

    plain = bot_kit(fallback=None, menu=None)
    open_dialog(plain, "7", "ыыы")
    assert plain.data("dialog.handed_over") == [{"reason": "no_rule"}]
    assert plain.dialog_of("7").state == "offered"  # type: ignore[union-attr]


def test_the_bot_leaves_when_an_operator_accepts_and_is_silent_from_then_on() -> None:
    kit = bot_kit()
    dialog = open_dialog(kit, "42")
    kit.write("42", text="operator please")
    before = len(kit.said)

    kit.dispatcher.accept(dialog.dialog_id, "a", kit.now)
    kit.collect()
    kit.write("42", text="deliver?")

    taken = kit.dialog_of("42")
    assert taken is not None and taken.voice is not None and taken.voice.bot is not None
    assert '"phase":"left"' in taken.voice.bot
    assert len(kit.said) == before  # nothing more from the bot


def test_a_transfer_to_an_operator_takes_the_dialog_out_of_the_bots_hands() -> None:
    kit = bot_kit()
    kit.online("b")
    dialog = open_dialog(kit, "42")

    kit.workflow.transfer_to_operator(dialog.dialog_id, "b", kit.now, by="a")
    kit.collect()

    taken = kit.dialog_of("42")
    assert taken is not None and (taken.held, taken.offered_to) == (None, ("b",))
    assert taken.voice is not None and '"phase":"left"' in (taken.voice.bot or "")


def test_a_line_whose_bot_is_removed_releases_the_dialogs_it_held() -> None:
    kit = bot_kit()
    open_dialog(kit, "42")

    kit.dispatcher.rules_changed(portal_rules(line_rules(members=("a",), accept=True)), kit.now)
    kit.collect()

    assert kit.data("dialog.handed_over") == [{"reason": "bot_removed"}]
    assert kit.dialog_of("42").state == "offered"  # type: ignore[union-attr]


def test_with_consent_required_the_bots_hand_over_waits_for_consent() -> None:
    rules = line_rules(members=("a",), bot=BOT, messages={"consent": CONSENT})
    kit = Kit(rules, contacts=True)
    kit.online("a")
    open_dialog(kit, "42")
    assert [n.text for n in kit.said] == [
        "May we process your personal data?",
        "How can I help, Ann?",
    ]

    kit.write("42", text="operator")
    assert kit.dialog_of("42").held == "consent"  # type: ignore[union-attr]
    kit.write("42", text="✅ Yes", press="ol:consent:yes")

    assert kit.types("42")[-7:] == [
        "message.received",
        "dialog.handed_over",
        "dialog.held",
        "message.received",
        "dialog.consent",
        "dialog.queued",
        "dialog.assigned",
    ]


# -- closing and rating ---------------------------------------------------------------------


def rating_kit() -> tuple[Kit, DialogState]:
    rules = line_rules(
        members=("a",),
        persona={"mode": "profile"},
        messages={
            "closing": {"text": "Thank you for writing, {customer_name}!"},
            "rating": {
                "scale": "five",
                "text": "Rate {operator_name} from 1 to 5.",
                "thanks_text": "Thanks!",
            },
        },
    )
    kit = Kit(rules, contacts=True)
    kit.online("a")
    kit.workflow.set_profile("a", "Anna")
    dialog = open_dialog(kit, "42")
    finish(kit, dialog)
    return kit, dialog


def test_a_finish_sends_the_closing_text_and_the_rating_request_with_buttons() -> None:
    kit, _ = rating_kit()

    closing, request = kit.said
    assert (closing.text, closing.keyboard) == ("Thank you for writing, Ann!", None)
    assert request.text == "Rate Anna from 1 to 5."
    assert buttons(request) == [(str(n), f"ol:rate:{n}") for n in range(1, 6)]


def test_a_rating_pressed_is_stored_with_the_dialog_and_its_operator() -> None:
    kit, dialog = rating_kit()

    after = kit.write("42", text="5", press="ol:rate:5")

    assert after is None  # no new dialog: the press answered the finished one
    assert kit.types("42")[-2:] == ["message.received", "dialog.rated"]
    assert kit.data("dialog.rated") == [
        {"operator_id": "a", "scale": "five", "score": 5, "via": "button"}
    ]
    rated = kit.stored[dialog.dialog_id]
    assert rated.state == "closed" and rated.voice is not None
    assert (rated.voice.rating, rated.voice.rating_asked, rated.operator_id) == (5, False, "a")
    assert texts_of(kit)[-1] == "Thanks!"
    assert [e.dialog_id for e in kit.entries if e.kind == "message.received"][
        -1
    ] == dialog.dialog_id


def test_a_rating_in_words_counts_and_anything_else_opens_a_new_dialog() -> None:
    kit, _ = rating_kit()

    assert kit.write("42", text="four") is None
    assert (
        kit.data("dialog.rated")[-1]["score"] == 4 and kit.data("dialog.rated")[-1]["via"] == "text"
    )

    other, first = rating_kit()
    new = other.write("42", text="I have another question")
    assert new is not None and new.dialog_id != first.dialog_id
    assert other.data("dialog.rated") == []


def test_a_label_sent_back_as_text_counts_as_its_button_as_viber_sends_it() -> None:
    kit, _ = rating_kit()

    kit.write("42", text="3")  # Viber's press is the button's ActionBody, its label

    assert kit.data("dialog.rated") == [
        {"operator_id": "a", "scale": "five", "score": 3, "via": "button"}
    ]


def test_two_answers_in_one_step_rate_once_and_the_second_opens_a_new_dialog() -> None:
    kit, first = rating_kit()
    rows = [
        InboxRow(90 + n, f"msg_9{n}", "message.received", CONVERSATION, 90 + n, kit.now)
        for n in (1, 2)
    ]
    heard = {
        91: Heard("Ann", "en", CustomerInput(text="5", payload="ol:rate:5")),
        92: Heard("Ann", "en", CustomerInput(text="4", payload="ol:rate:4")),
    }
    latest = kit.latest("42")
    assert latest is not None

    kit.dispatcher.arrive(rows, {}, {latest.ref: latest}, kit.now, {}, heard)
    kit.collect()

    assert [d["score"] for d in kit.data("dialog.rated")] == [5]
    second = kit.dialog_of("42")
    assert second is not None and second.dialog_id != first.dialog_id


# -- reminders and auto-close ---------------------------------------------------------------


def silence_kit() -> tuple[Kit, DialogState]:
    rules = line_rules(
        members=("a",),
        messages={
            "follow_ups": [
                {"after_s": 3600, "text": "Still there?"},
                {"after_s": 43200, "text": "Closing soon."},
            ],
            "auto_close": {"after_s": 86400, "text": "Closed: write any time."},
        },
    )
    kit = Kit(rules)
    kit.online("a")
    dialog = open_dialog(kit, "42")
    reply(kit, dialog)
    return kit, dialog


def test_reminders_follow_an_unanswered_reply_and_then_the_dialog_closes_itself() -> None:
    kit, dialog = silence_kit()

    kit.advance(3599)
    assert kit.said == []
    kit.advance(1)
    assert texts_of(kit) == ["Still there?"]
    kit.advance(43200 - 3600)
    assert texts_of(kit) == ["Still there?", "Closing soon."]
    kit.advance(86400 - 43200)

    assert texts_of(kit) == ["Still there?", "Closing soon.", "Closed: write any time."]
    assert kit.data("dialog.closed") == [
        {"reason": "auto_closed", "operator_id": "a", "closed_by": None, "decline": None}
    ]
    assert kit.dialog_of("42") is None and kit.stored[dialog.dialog_id].state == "closed"


def test_the_customer_writing_ends_the_silence_and_the_next_reply_starts_a_new_one() -> None:
    kit, _ = silence_kit()
    kit.advance(1800)
    kit.write("42", text="thinking")
    kit.advance(7200)
    assert kit.said == []  # no reminder: the customer answered

    reply(kit, kit.dialog_of("42"))  # type: ignore[arg-type]
    kit.advance(3600)
    assert texts_of(kit) == ["Still there?"]


def test_after_a_long_stop_only_the_latest_reminder_goes_out() -> None:
    kit, _ = silence_kit()

    kit.advance(50000)

    assert texts_of(kit) == ["Closing soon."]


# -- KPI --------------------------------------------------------------------------------------


def test_a_late_first_answer_is_reported_once_per_wait_and_a_late_next_answer_too() -> None:
    kit = Kit(
        line_rules(members=("a",), messages={"kpi": {"first_answer_s": 60, "next_answer_s": 300}})
    )
    kit.online("a")
    dialog = open_dialog(kit, "42")
    started = kit.now

    kit.advance(61)
    kit.write("42", text="hello??")  # the same wait goes on
    kit.advance(600)
    assert kit.data("dialog.kpi_exceeded") == [
        {"kind": "first_answer", "limit_s": 60.0, "waiting_since": started, "waited_s": 61.0}
    ]

    reply(kit, dialog)
    kit.advance(10)
    kit.write("42", text="and now?")
    next_started = kit.now
    kit.advance(299)
    assert len(kit.data("dialog.kpi_exceeded")) == 1
    kit.advance(1)
    kit.advance(1000)

    assert kit.data("dialog.kpi_exceeded")[1:] == [
        {"kind": "next_answer", "limit_s": 300.0, "waiting_since": next_started, "waited_s": 300.0}
    ]
    assert kit.said == []  # the customer is told nothing


def test_an_answer_in_time_raises_no_alert() -> None:
    kit = Kit(line_rules(members=("a",), messages={"kpi": {"first_answer_s": 60}}))
    kit.online("a")
    dialog = open_dialog(kit, "42")
    kit.advance(59)
    reply(kit, dialog)
    kit.advance(3600)

    assert kit.data("dialog.kpi_exceeded") == []


# -- restarts ---------------------------------------------------------------------------------


def test_a_restart_continues_the_bot_where_it_stopped() -> None:
    kit = bot_kit()
    open_dialog(kit, "42")
    kit.write("42", text="ыыы")  # one miss before the restart

    kit.restart()
    assert (
        kit.dispatcher.deadline(kit.board.dialogs[kit.dialog_of("42").dialog_id]) == 1_800_000_600.0
    )  # type: ignore[union-attr]
    kit.write("42", text="ааа")  # the second miss in a row, after it

    assert kit.data("dialog.handed_over") == [{"reason": "no_rule"}]


def test_a_restart_recomputes_pending_timers_and_fires_what_fell_due_once() -> None:
    kit, _ = silence_kit()
    kit.advance(3600)
    assert texts_of(kit) == ["Still there?"]

    kit.now += 43200  # stopped through the second reminder's time
    kit.restart()
    kit.advance(0)

    assert texts_of(kit) == ["Still there?", "Closing soon."]
    dialog = kit.dialog_of("42")
    assert dialog is not None and kit.dispatcher.deadline(dialog) == 1_800_000_000.0 + 86400


def test_a_restart_keeps_a_held_bot_timer_and_the_kpi_wait() -> None:
    rules = line_rules(
        members=("a",), accept=True, bot=BOT, messages={"kpi": {"first_answer_s": 60}}
    )
    kit = Kit(rules, contacts=True)
    kit.online("a")
    open_dialog(kit, "42")
    kit.write("42", text="operator")  # handed over: the customer waits for an operator

    kit.restart()
    kit.advance(60)

    assert [d["kind"] for d in kit.data("dialog.kpi_exceeded")] == ["first_answer"]


def test_keyboards_carry_the_lines_payloads() -> None:
    kit = bot_kit()
    open_dialog(kit, "42")
    keyboard = kit.said[0].keyboard

    assert isinstance(keyboard, Keyboard)
    assert all(button.payload.startswith("ol:bot:m:") for button in keyboard.buttons)
