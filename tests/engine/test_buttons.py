"""Channel-neutral buttons: the keyboard's rules, its text fallback, and reading a press
from a normalized message (``docs/line-messages.md``, "Buttons")."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.buttons import (
    Button,
    Keyboard,
    chosen_button,
    fold_label,
    is_payload,
    make_payload,
    numbered_text,
)
from engine.buttons.keyboard import MAX_BUTTONS, MAX_ROWS, PAYLOAD_MAX_CHARS, reflow_rows
from engine.buttons.press import (
    CustomerInput,
    customer_input,
    unwrap_json_payload,
    wrap_json_payload,
)
from engine.models import (
    Customer,
    FileRef,
    ImageContent,
    InboundMessage,
    Route,
    StickerContent,
    TextContent,
)

ROUTE = Route(portal_id="p1", line_id="support", connector_id="c1", channel="vk")


def button(label: str, *payload: str) -> Button:
    return Button(label=label, payload=make_payload(*(payload or ("x", label))))


def message(content: object = None, **extras: str) -> InboundMessage:
    return InboundMessage(
        id="e1",
        route=ROUTE,
        dialog_key="42",
        customer=Customer(channel_user_id="42"),
        content=content,  # type: ignore[arg-type]
        channel_message_id="1",
        channel_event_id="1",
        order_key=1,
        sent_at=1.0,
        received_at=1.0,
        extras=extras,
    )


# -- payloads


def test_payloads_are_short_ascii_ids() -> None:
    assert make_payload("rate", "5") == "ol:rate:5"
    assert is_payload("ol:bot:m:0:a1b2c3")
    assert not is_payload("rate:5")
    assert not is_payload("ol:")
    assert not is_payload("ol:" + "a" * 24 + ":" + "b" * 24 + ":" + "c" * 24)  # 77 > 64
    with pytest.raises(ValueError, match="is not 1-24 of"):
        make_payload("доставка")
    with pytest.raises(ValueError, match="1 to 4 parts"):
        make_payload("a", "b", "c", "d", "e")


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,24}", fullmatch=True), min_size=1, max_size=4))
def test_every_made_payload_fits_telegram_and_round_trips_through_vk_json(parts: list[str]) -> None:
    try:
        payload = make_payload(*parts)
    except ValueError:
        assert len(":".join(["ol", *parts])) > PAYLOAD_MAX_CHARS
        return
    assert len(payload.encode()) <= 64
    assert unwrap_json_payload(wrap_json_payload(payload)) == payload


# -- the keyboard


def test_a_keyboard_refuses_shared_payloads_and_labels() -> None:
    with pytest.raises(ValidationError, match="share a payload"):
        Keyboard.one_row((button("Да", "a"), button("Нет", "a")))
    with pytest.raises(ValidationError, match="share a label"):
        Keyboard.one_row((button("Да", "a"), button(" да! ", "b")))


def test_a_keyboard_has_bounded_rows_and_buttons() -> None:
    with pytest.raises(ValidationError, match="every row holds 1 to 8"):
        Keyboard(rows=(tuple(button(str(i)) for i in range(9)),))
    with pytest.raises(ValidationError, match="at least 1 item"):
        Keyboard(rows=())
    many = tuple((button(str(i)),) for i in range(MAX_BUTTONS + 1))
    with pytest.raises(ValidationError):
        Keyboard(rows=many)


@pytest.mark.parametrize("label", ["", "   ", "two\nlines", "tab\there", "x" * 101])
def test_a_label_is_one_visible_line(label: str) -> None:
    with pytest.raises(ValidationError):
        Button(label=label, payload="ol:x")


def test_reflow_keeps_reading_order() -> None:
    row = tuple(button(str(i)) for i in range(7))
    rows = reflow_rows((row, (button("z"),)), 3)
    assert [[b.label for b in r] for r in rows] == [["0", "1", "2"], ["3", "4", "5"], ["6"], ["z"]]


# -- text fallback


RATING = Keyboard.one_row(tuple(button(str(score), "rate", str(score)) for score in range(1, 6)))
CONSENT = Keyboard.one_row(
    (button("✅ Согласен", "consent", "yes"), button("❌ Нет", "consent", "no"))
)


def test_numbered_text_lists_the_buttons_in_reading_order() -> None:
    assert numbered_text("Согласны?", CONSENT) == "Согласны?\n\n1. ✅ Согласен\n2. ❌ Нет"


@pytest.mark.parametrize(
    ("typed", "payload"),
    [
        ("1", "ol:consent:yes"),
        ("2.", "ol:consent:no"),
        ("  ✅ СОГЛАСЕН! ", "ol:consent:yes"),
        ("❌ нет", "ol:consent:no"),
        ("3", None),
        ("0", None),
        ("согласен", None),  # a label is compared whole
    ],
)
def test_a_typed_number_or_label_chooses_a_button(typed: str, payload: str | None) -> None:
    chosen = chosen_button(typed, CONSENT)
    assert (chosen.payload if chosen else None) == payload


def test_a_label_wins_over_a_number() -> None:
    reversed_scale = Keyboard.one_row(
        tuple(button(str(score), "rate", str(score)) for score in (3, 2, 1))
    )
    chosen = chosen_button("1", reversed_scale)
    assert chosen is not None and chosen.payload == "ol:rate:1"


def test_fold_label_reads_yo_variation_selectors_and_spacing_alike() -> None:
    assert fold_label("  Всё   ХОРОШО!!! ") == fold_label("все хорошо")
    assert fold_label("❤️") == fold_label("❤")


labels = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda text: text.strip() != "")


@given(st.lists(labels, min_size=1, max_size=MAX_ROWS, unique_by=fold_label))
def test_every_button_is_chosen_by_its_label_or_its_number(texts: list[str]) -> None:
    buttons = [
        Button(label=text, payload=make_payload("b", str(i))) for i, text in enumerate(texts)
    ]
    keyboard = Keyboard.column(tuple(buttons))
    for number, each in enumerate(buttons, 1):
        assert chosen_button(each.label, keyboard) == each
        by_number = chosen_button(str(number), keyboard)
        # A number is read as a label first when some label folds to it.
        assert by_number is not None
        assert by_number == each or fold_label(by_number.label) == str(number)


# -- reading a press from a message


def test_a_vk_press_is_read_from_its_json_payload() -> None:
    pressed = message(TextContent(text="Да"), payload='{"ol":"ol:consent:yes"}')
    assert customer_input(pressed) == CustomerInput(text="Да", payload="ol:consent:yes")


@pytest.mark.parametrize(
    "raw", ['{"command":"start"}', "not json", '{"ol": 5}', '{"ol":"rate:5"}', "[]", '"ol:x"']
)
def test_a_payload_that_is_not_ours_is_no_press(raw: str) -> None:
    assert customer_input(message(TextContent(text="Начать"), payload=raw)).payload is None


def test_a_channel_press_is_read_from_button_payload() -> None:
    pressed = message(TextContent(text="👍"), button_payload="ol:rate:like")
    assert customer_input(pressed).payload == "ol:rate:like"
    foreign = message(TextContent(text="Good"), button_payload="rate:5")
    assert customer_input(foreign) == CustomerInput(text="Good")


def test_a_sticker_answers_with_its_emoji_and_a_photo_with_nothing() -> None:
    sticker = message(StickerContent(file=FileRef(file_id="s1"), emoji="👍"))
    assert customer_input(sticker) == CustomerInput(text="👍")
    photo = message(ImageContent(file=FileRef(file_id="p1"), caption="5"))
    assert customer_input(photo) == CustomerInput()


def test_an_input_chooses_by_press_before_text() -> None:
    both = CustomerInput(text="2", payload="ol:consent:yes")
    assert both.choice(CONSENT) == "ol:consent:yes"
    stranger = CustomerInput(text="2", payload="ol:rate:5")
    assert stranger.choice(CONSENT) == "ol:consent:no"
    assert CustomerInput().choice(CONSENT) is None


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=300), max_size=5), st.text())
def test_reading_a_message_never_raises(extras: dict[str, str], text: str) -> None:
    found = customer_input(message(TextContent(text=text), **extras))
    assert found.text == text
    assert found.payload is None or is_payload(found.payload)
    assert orjson.dumps(found.payload)  # a str or None, whatever came in
