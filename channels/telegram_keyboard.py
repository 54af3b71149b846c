"""Telegram: buttons as an inline keyboard, and a press (``callback_query``) read back.

Outbound, a ``Keyboard`` becomes ``sendMessage``'s ``reply_markup``:
``{"inline_keyboard": [[{"text", "callback_data"}, ...], ...]}``. The Bot API documents one
limit here, ``callback_data`` of 1-64 bytes, which our payloads meet by construction
(``engine.buttons.keyboard``); it documents none for the label or the number of buttons, so
the neutral keyboard's own caps (8 per row, 40 in all) apply.

Inbound, a press is not a message but an update of its own, ``callback_query``, carrying the
button's ``callback_data`` and the message the keyboard was on (with that keyboard). The
client shows a spinner on the button until the bot calls ``answerCallbackQuery``.
``press_message`` turns the update into the universal message the line reads (the label as
text, the payload in ``extras["button_payload"]``), so the dialog's history shows what the
customer chose. See ``docs/line-messages.md``, "Buttons", for how the channel wires it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from channels.telegram_types import TgChat, TgUser
from engine.buttons.keyboard import Keyboard
from engine.buttons.press import BUTTON_PAYLOAD_EXTRA
from engine.ids import inbound_event_id
from engine.models import Customer, InboundMessage, Route, TextContent

MAX_CALLBACK_DATA_BYTES = 64
ANSWER_METHOD = "answerCallbackQuery"


def reply_markup(keyboard: Keyboard) -> dict[str, Any]:
    """The ``reply_markup`` parameter that shows ``keyboard`` under the message."""
    rows = [
        [{"text": button.label, "callback_data": _callback_data(button.payload)} for button in row]
        for row in keyboard.rows
    ]
    return {"inline_keyboard": rows}


def _callback_data(payload: str) -> str:
    if not 1 <= len(payload.encode()) <= MAX_CALLBACK_DATA_BYTES:  # the grammar forbids it
        raise ValueError(f"payload {payload!r} is not 1-64 bytes")
    return payload


class _Provider(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _KeyboardMessage(_Provider):
    """The message the pressed keyboard is on, as far as a press needs it."""

    message_id: int
    chat: TgChat
    reply_markup: dict[str, Any] | None = None


class _CallbackQuery(_Provider):
    id: str
    from_user: TgUser = Field(alias="from")
    message: _KeyboardMessage | None = None
    data: str | None = None


@dataclass(frozen=True)
class CallbackPress:
    """One press of an inline button: whose, where, which."""

    update_id: int
    callback_query_id: str
    user: TgUser
    chat: TgChat
    message_id: int
    data: str
    label: str | None


def callback_press(update: dict[str, Any]) -> CallbackPress | None:
    """The press in a ``callback_query`` update, or ``None`` when the update is not one we
    can act on: no ``data`` (a game button), or no message (a press on an inline-mode
    message, which belongs to no chat of ours), or not the Bot API's shape."""
    raw = update.get("callback_query")
    update_id = update.get("update_id")
    if not isinstance(raw, dict) or not isinstance(update_id, int):
        return None
    try:
        query = _CallbackQuery.model_validate(raw)
    except ValidationError:
        return None
    if query.data is None or query.message is None:
        return None
    return CallbackPress(
        update_id=update_id,
        callback_query_id=query.id,
        user=query.from_user,
        chat=query.message.chat,
        message_id=query.message.message_id,
        data=query.data,
        label=_label_of(query.message.reply_markup, query.data),
    )


def _label_of(markup: dict[str, Any] | None, data: str) -> str | None:
    """The text of the button whose ``callback_data`` is ``data``, from the keyboard the
    update itself carries; ``None`` if the keyboard is gone or edited."""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                text = button.get("text")
                return text if isinstance(text, str) and text.strip() else None
    return None


def press_message(route: Route, press: CallbackPress, received_at: float) -> InboundMessage:
    """The universal message for a press: the label as text (the data when the label is
    unknown), the payload in ``extras["button_payload"]``.

    Its ids are the update's (``update_id`` de-duplicates and orders it, as for messages);
    ``channel_message_id`` is the message the keyboard is on, the only message id a press
    has, so a reply quoting the press quotes the question.
    """
    user = press.user
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return InboundMessage(
        id=inbound_event_id(route.connector_id, str(press.update_id)),
        route=route,
        dialog_key=str(press.chat.id),
        customer=Customer(
            channel_user_id=str(user.id),
            name=name or None,
            username=user.username,
            profile_url=f"https://t.me/{user.username}" if user.username else None,
            language=user.language_code,
        ),
        content=TextContent(text=press.label or press.data),
        channel_message_id=str(press.message_id),
        channel_event_id=str(press.update_id),
        order_key=press.update_id,
        sent_at=received_at,  # a callback_query carries no time of its own
        received_at=received_at,
        extras={
            BUTTON_PAYLOAD_EXTRA: press.data,
            "callback_query_id": press.callback_query_id,
            "chat_type": press.chat.type,
        },
    )


def answer_call(press: CallbackPress) -> tuple[str, dict[str, Any]]:
    """The ``answerCallbackQuery`` call that stops the client's spinner on the button.

    Best effort and after the durable append: a failed answer only leaves the spinner to
    time out on the client; the press itself is stored either way.
    """
    return ANSWER_METHOD, {"callback_query_id": press.callback_query_id}
