"""Buttons on each channel: the provider's wire format within its limits, and a press read
back through the channel's real parsing (``docs/line-messages.md``, "Buttons")."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import telegram_keyboard, viber_keyboard, vk_keyboard
from channels.base import RawRequest
from channels.keyboards import render_buttons
from channels.text_shorten import shorten
from channels.text_split import utf16_units
from channels.viber import ViberChannel, ViberCredentials
from channels.vk import VkChannel, VkCredentials
from engine.buttons import Button, Keyboard, chosen_button, fold_label, make_payload
from engine.buttons.keyboard import LABEL_MAX_CHARS, MAX_ROW_BUTTONS, MAX_ROWS
from engine.buttons.press import customer_input, unwrap_json_payload
from tests.channels.conftest import FIXED_NOW_S, route_for

DATA = Path(__file__).resolve().parents[1] / "data"


def recorded(channel: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / channel / f"{name}.json").read_text())
    return loaded


def request(body: dict[str, Any]) -> RawRequest:
    return RawRequest(
        "POST", "/hooks/x", {"content-type": "application/json"}, {}, orjson.dumps(body)
    )


def keyboard(*rows: tuple[str, ...]) -> Keyboard:
    return Keyboard(
        rows=tuple(
            tuple(
                Button(label=label, payload=make_payload("t", f"{r}-{i}"))
                for i, label in enumerate(row)
            )
            for r, row in enumerate(rows)
        )
    )


CONSENT = keyboard(("✅ Согласен", "❌ Нет"))

# Keyboards of any shape the neutral model admits, with Cyrillic, emoji and long labels.
label_text = (
    st.lists(
        st.one_of(
            st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
            st.sampled_from(["👍", "👨‍👩‍👧", "🇷🇺", "é", "<", "&", "ё", "Ж", " "]),
        ),
        min_size=1,
        max_size=60,
    )
    .map("".join)
    .filter(lambda text: text.strip() != "" and len(text) <= LABEL_MAX_CHARS)
)


@st.composite
def keyboards(draw: st.DrawFn) -> Keyboard:
    shape = draw(st.lists(st.integers(1, MAX_ROW_BUTTONS), min_size=1, max_size=MAX_ROWS))
    count = min(sum(shape), 40)
    texts = draw(st.lists(label_text, min_size=count, max_size=count, unique_by=fold_label))
    rows, taken = [], 0
    for width in shape:
        row = tuple(
            Button(label=texts[taken + i], payload=make_payload("k", str(taken + i)))
            for i in range(min(width, count - taken))
        )
        taken += len(row)
        if row:
            rows.append(row)
    return Keyboard(rows=tuple(rows))


# -- Telegram


def test_telegram_renders_an_inline_keyboard_with_callback_data() -> None:
    assert telegram_keyboard.reply_markup(CONSENT) == {
        "inline_keyboard": [
            [
                {"text": "✅ Согласен", "callback_data": "ol:t:0-0"},
                {"text": "❌ Нет", "callback_data": "ol:t:0-1"},
            ]
        ]
    }


@given(keyboards())
@settings(max_examples=60, deadline=None)
def test_telegram_callback_data_is_never_over_64_bytes(board: Keyboard) -> None:
    markup = telegram_keyboard.reply_markup(board)
    buttons = [button for row in markup["inline_keyboard"] for button in row]
    assert [b["callback_data"] for b in buttons] == [b.payload for b in board.buttons]
    assert all(1 <= len(b["callback_data"].encode()) <= 64 for b in buttons)
    assert [b["text"] for b in buttons] == [b.label for b in board.buttons]


def test_a_recorded_callback_query_becomes_a_press_with_its_label() -> None:
    press = telegram_keyboard.callback_press(recorded("telegram", "callback_query"))
    assert press is not None
    assert (press.data, press.label, press.chat.id, press.message_id) == (
        "rate:5",
        "Good",
        6187743210,
        40,
    )
    message = telegram_keyboard.press_message(route_for("telegram"), press, FIXED_NOW_S)
    assert message.dialog_key == "6187743210" and message.order_key == 940961563
    assert message.customer.language == "en"
    # Not one of our payloads: the engine reads the label as text only.
    assert customer_input(message).text == "Good" and customer_input(message).payload is None
    assert telegram_keyboard.answer_call(press) == (
        "answerCallbackQuery",
        {"callback_query_id": "4382bfdwdsb323b2d9"},
    )


def test_a_press_of_our_button_carries_its_payload() -> None:
    update = recorded("telegram", "callback_query")
    markup = telegram_keyboard.reply_markup(CONSENT)
    update["callback_query"]["message"]["reply_markup"] = markup
    update["callback_query"]["data"] = "ol:t:0-0"
    press = telegram_keyboard.callback_press(update)
    assert press is not None
    read = customer_input(telegram_keyboard.press_message(route_for("telegram"), press, 1.0))
    assert (read.text, read.payload) == ("✅ Согласен", "ol:t:0-0")
    assert read.choice(CONSENT) == "ol:t:0-0"


@pytest.mark.parametrize(
    "change",
    [
        lambda q: q.pop("data"),  # a game button
        lambda q: q.pop("message"),  # a press on an inline-mode message
        lambda q: q.update({"from": "nobody"}),
    ],
)
def test_a_callback_query_we_cannot_act_on_is_none(change: Any) -> None:
    update = recorded("telegram", "callback_query")
    change(update["callback_query"])
    assert telegram_keyboard.callback_press(update) is None
    assert telegram_keyboard.callback_press({"update_id": 1, "message": {}}) is None


def test_a_press_whose_keyboard_is_gone_reads_as_its_data() -> None:
    update = recorded("telegram", "callback_query")
    del update["callback_query"]["message"]["reply_markup"]
    press = telegram_keyboard.callback_press(update)
    assert press is not None and press.label is None
    message = telegram_keyboard.press_message(route_for("telegram"), press, 1.0)
    assert customer_input(message).text == "rate:5"


# -- VK


def vk_body(board: Keyboard) -> dict[str, Any]:
    param = vk_keyboard.keyboard_param(board)
    assert param is not None
    loaded: dict[str, Any] = orjson.loads(param)
    return loaded


def test_vk_renders_text_buttons_with_json_payloads_inline() -> None:
    assert vk_body(CONSENT) == {
        "inline": True,
        "buttons": [
            [
                {
                    "action": {
                        "type": "text",
                        "label": "✅ Согласен",
                        "payload": '{"ol":"ol:t:0-0"}',
                    }
                },
                {"action": {"type": "text", "label": "❌ Нет", "payload": '{"ol":"ol:t:0-1"}'}},
            ]
        ],
    }


def test_vk_uses_a_one_time_keyboard_when_inline_cannot_hold_it() -> None:
    seven_rows = vk_body(keyboard(*[(f"Вариант {i}",) for i in range(7)]))
    assert seven_rows["inline"] is False and seven_rows["one_time"] is True
    assert len(seven_rows["buttons"]) == 7
    twelve_buttons = vk_body(keyboard(tuple("ABCDEF"), tuple("GHIJKL")))
    assert twelve_buttons["inline"] is False
    assert [len(row) for row in twelve_buttons["buttons"]] == [5, 1, 5, 1]
    assert vk_body(keyboard(*[(f"Вариант {i}",) for i in range(6)]))["inline"] is True


def test_vk_cannot_show_more_than_ten_rows_and_says_so() -> None:
    twelve = keyboard(*[(f"Вариант {i}",) for i in range(12)])
    assert vk_keyboard.keyboard_param(twelve) is None
    rendered = render_buttons("vk", "Выберите:", twelve)
    assert rendered.params == {} and rendered.text.endswith("12. Вариант 11")


def test_vk_shortens_a_long_label_and_splits_a_wide_row() -> None:
    long_label = "Доставка и оплата заказов по всей России 🚚"
    body = vk_body(keyboard((long_label, "1", "2", "3", "4", "5", "6")))
    first = body["buttons"][0][0]["action"]["label"]
    assert first == "Доставка и оплата заказов по всей…" and utf16_units(first) <= 40
    assert [len(row) for row in body["buttons"]] == [5, 2]


@given(keyboards())
@settings(max_examples=60, deadline=None)
def test_vk_keyboards_stay_within_vk_limits_and_payloads_round_trip(board: Keyboard) -> None:
    param = vk_keyboard.keyboard_param(board)
    if param is None:
        assert len(board.buttons) > 40 or len(vk_keyboard.reflow_rows(board.rows, 5)) > 10
        return
    body = orjson.loads(param)
    rows = body["buttons"]
    limits = (6, 10) if body["inline"] else (10, 40)
    assert len(rows) <= limits[0] and sum(len(row) for row in rows) <= limits[1]
    assert all(1 <= len(row) <= 5 for row in rows)
    actions = [button["action"] for row in rows for button in row]
    assert all(utf16_units(a["label"]) <= 40 and len(a["payload"]) <= 255 for a in actions)
    assert [unwrap_json_payload(a["payload"]) for a in actions] == [
        b.payload for b in board.buttons
    ]


def vk_channel() -> VkChannel:
    credentials = VkCredentials(
        access_token="t", secret="Qw3rTy8sEcr3t", confirmation_code="c", group_id=193668024
    )
    return VkChannel(route_for("vk"), credentials)


def test_a_recorded_vk_button_press_is_read_as_our_payload() -> None:
    parsed = vk_channel().parse(request(recorded("keyboards", "vk_button_press")), FIXED_NOW_S)
    (message,) = parsed.messages
    read = customer_input(message)
    assert (read.text, read.payload) == ("👍", "ol:rate:like")


# -- Viber


def viber_buttons(board: Keyboard) -> list[dict[str, Any]]:
    param = viber_keyboard.keyboard_param(board)
    assert param is not None and param["Type"] == "keyboard"
    buttons: list[dict[str, Any]] = param["Buttons"]
    return buttons


def test_viber_buttons_reply_with_their_label_and_fill_each_grid_row() -> None:
    buttons = viber_buttons(keyboard(("Да", "Нет"), ("A", "B", "C", "D"), ("Один",)))
    assert [b["Columns"] for b in buttons] == [3, 3, 2, 2, 1, 1, 6]
    assert buttons[0] == {
        "Columns": 3,
        "Rows": 1,
        "ActionType": "reply",
        "ActionBody": "Да",
        "Text": "Да",
    }


def test_viber_escapes_html_in_the_text_and_keeps_the_body_raw() -> None:
    (button,) = viber_buttons(keyboard(("<b>Tom & Jerry</b>",)))
    assert button["Text"] == "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"
    assert button["ActionBody"] == "<b>Tom & Jerry</b>"


@given(keyboards())
@settings(max_examples=60, deadline=None)
def test_viber_keyboards_fill_rows_exactly_and_presses_round_trip(board: Keyboard) -> None:
    body = viber_keyboard.keyboard_body(board)
    fits = len(orjson.dumps(body)) <= viber_keyboard.MAX_KEYBOARD_BYTES
    assert viber_keyboard.keyboard_param(board) == (body if fits else None)
    buttons = body["Buttons"]
    widths = [b["Columns"] for b in buttons]
    assert all(1 <= width <= 6 for width in widths)
    # Rows of 6 columns exactly, so the client never merges two of our rows.
    assert sum(widths) % 6 == 0
    assert all(len(b["Text"]) <= 250 and b["Rows"] == 1 for b in buttons)
    for sent, original in zip(buttons, board.buttons, strict=True):
        assert chosen_button(sent["ActionBody"], board) == original
        assert html.unescape(sent["Text"]) == original.label


def test_viber_refuses_a_keyboard_over_its_share_of_the_request() -> None:
    heavy = keyboard(*[tuple(f"{r}.{i} " + "👨‍👩‍👧" * 12 for i in range(4)) for r in range(10)])
    assert (
        len(orjson.dumps(viber_keyboard.keyboard_body(heavy))) > viber_keyboard.MAX_KEYBOARD_BYTES
    )
    assert viber_keyboard.keyboard_param(heavy) is None
    assert render_buttons("viber", "Выберите:", heavy).params == {}


def test_a_recorded_viber_press_names_its_button() -> None:
    channel = ViberChannel(route_for("viber"), ViberCredentials(auth_token="token"))
    parsed = channel.parse(request(recorded("keyboards", "viber_button_press")), FIXED_NOW_S)
    (message,) = parsed.messages
    read = customer_input(message)
    assert read.payload is None and read.choice(CONSENT) == "ol:t:0-0"


# -- choosing per channel


def test_a_channel_without_buttons_gets_numbered_options() -> None:
    rendered = render_buttons("custom", "Согласны?", CONSENT)
    assert rendered.text == "Согласны?\n\n1. ✅ Согласен\n2. ❌ Нет" and rendered.params == {}


def test_a_channel_with_buttons_gets_its_parameters_and_the_text_unchanged() -> None:
    assert render_buttons("telegram", "Согласны?", CONSENT).params == {
        "reply_markup": telegram_keyboard.reply_markup(CONSENT)
    }
    assert set(render_buttons("vk", "Согласны?", CONSENT).params) == {"keyboard"}
    assert set(render_buttons("viber", "Согласны?", CONSENT).params) == {"keyboard"}
    assert render_buttons("viber", "Без кнопок", None).params == {}


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Короткий", 40, "Короткий"),
        ("Оплата картой при получении заказа", 20, "Оплата картой при…"),
        ("👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧", 12, "👨‍👩‍👧…"),
    ],
)
def test_shorten_cuts_at_a_space_or_between_emoji(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit, utf16_units) == expected
