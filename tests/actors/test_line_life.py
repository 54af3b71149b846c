"""A dialog's whole life on a line that speaks for itself, through the running engine:
Telegram updates in (messages and inline-button presses), the portal stand-in out, signed
portal API calls, the engine's manual clock moved through the admin API (never slept).

Greeting, consent by button, the bot's menu and a rule's answer, the hand-over by button,
the queue, a late first answer (KPI), accept, transfer, invite, the operator's reply,
finish, the closing text and the rating by inline button: the exact events the portal
received and the exact texts and keyboards Telegram received (docs/line-messages.md,
docs/bot.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.bot.config import BotChoice
from engine.bot.session import choice_payload
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update

pytestmark = pytest.mark.usefixtures("ray_session")

SECRET = "telegram-secret-token"
CHAT = 42
MENU_ITEMS: list[dict[str, Any]] = [
    {
        "label": {"ru": "🚚 Доставка", "en": "🚚 Delivery"},
        "answer": {"ru": "Доставка: 1–2 дня.", "en": "Delivery takes 1–2 days."},
    },
    {"label": {"ru": "👤 Оператор", "en": "👤 Operator"}, "handover": True},
]
LINE: dict[str, Any] = {
    "portal": "acme",
    "line": "support",
    "queue": {
        "members": [{"operator": "anna"}, {"operator": "boris"}],
        "distribution": "strictly",
    },
    "timers": {"accept_timeout_s": 250},
    "languages": {"default": "ru", "supported": ["ru", "en"]},
    "messages": {
        "greeting": {
            "text": {
                "ru": "Здравствуйте, {customer_name}! Это {line_name}.",
                "en": "Hello, {customer_name}! This is {line_name}.",
            }
        },
        "consent": {
            "required_before_routing": True,
            "text": {
                "ru": "Согласны на обработку данных?",
                "en": "Do you agree to data processing?",
            },
            "accept_label": {"ru": "✅ Согласен", "en": "✅ I agree"},
            "decline_label": {"ru": "❌ Нет", "en": "❌ No"},
            "accepted_text": {"ru": "Спасибо!", "en": "Thank you!"},
        },
        "closing": {
            "text": {"ru": "Спасибо, {customer_name}!", "en": "Thank you, {customer_name}!"}
        },
        "rating": {
            "scale": "five",
            "text": {
                "ru": "Оцените {operator_name} от 1 до 5.",
                "en": "Please rate {operator_name} from 1 to 5.",
            },
            "thanks_text": {"ru": "Спасибо за оценку!", "en": "Thanks for the rating!"},
        },
        "kpi": {"first_answer_s": 60},
    },
    "bot": {
        "rules": [
            {
                "match": {"keywords": ["deliver*", "достав*"]},
                "answer": {"ru": "Доставка: 1–2 дня.", "en": "Delivery takes 1–2 days."},
            }
        ],
        "menu": {
            "text": {"ru": "Чем помочь?", "en": "How can I help, {customer_name}?"},
            "items": MENU_ITEMS,
        },
        "handover": {"text": {"ru": "Соединяю.", "en": "Connecting you to an operator."}},
    },
}
MENU_PAYLOADS = [
    # As the engine reads the item from the rule file the harness writes (keys sorted).
    choice_payload("m", index, BotChoice.model_validate(yaml.safe_load(yaml.safe_dump(item))))
    for index, item in enumerate(MENU_ITEMS)
]
MENU = {
    "inline_keyboard": [
        [{"text": "🚚 Delivery", "callback_data": MENU_PAYLOADS[0]}],
        [{"text": "👤 Operator", "callback_data": MENU_PAYLOADS[1]}],
    ]
}
CONSENT = {
    "inline_keyboard": [
        [
            {"text": "✅ I agree", "callback_data": "ol:consent:yes"},
            {"text": "❌ No", "callback_data": "ol:consent:no"},
        ]
    ]
}
RATING = {
    "inline_keyboard": [[{"text": str(n), "callback_data": f"ol:rate:{n}"} for n in range(1, 6)]]
}
CUSTOMER = {"id": CHAT, "is_bot": False, "first_name": "Ann", "language_code": "en"}


def message(update_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": CUSTOMER,
            "chat": {"id": CHAT, "type": "private"},
            "date": 1776047737,
            "text": text,
        },
    }


def press(update_id: int, sent: dict[str, Any], message_id: int, data: str) -> dict[str, Any]:
    """Telegram's update for a press on the message the engine sent (``sent``: its
    sendMessage parameters, keyboard included, as Telegram echoes them)."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq-{update_id}",
            "from": CUSTOMER,
            "message": {
                "message_id": message_id,
                "from": {"id": 7000000001, "is_bot": True, "first_name": "Stand-in"},
                "chat": {"id": CHAT, "type": "private"},
                "date": 1776047800,
                "text": sent["text"],
                "reply_markup": sent["reply_markup"],
            },
            "chat_instance": "-1",
            "data": data,
        },
    }


def step(event: dict[str, Any]) -> tuple[str, Any]:
    """An event's type and what it is about."""
    data = event["data"]
    kind = event["type"]
    if kind.startswith("message."):
        return kind, data["content"]["text"]
    if kind.startswith("reply."):
        return kind, data["origin"]
    if kind == "dialog.consent":
        return kind, (data["given"], data["via"])
    if kind == "dialog.rated":
        return kind, (data["operator_id"], data["score"], data["via"])
    if kind == "dialog.transferred":
        return kind, (data["from_operator_id"], data["to_operator_id"])
    if kind == "dialog.kpi_exceeded":
        return kind, (data["kind"], data["limit_s"], data["waited_s"])
    return kind, data.get("operator_id") or data.get("operator_ids") or data.get("reason")


def said(text: str, keyboard: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``sendMessage`` to chat 42 as the engine makes it (Telegram's HTML, its keyboard)."""
    params: dict[str, Any] = {"chat_id": "42", "parse_mode": "HTML", "text": text}
    if keyboard is not None:
        params["reply_markup"] = keyboard
    return params


class Life:
    """The test's hands: the customer in Telegram, operators through the portal API."""

    def __init__(self, engine: RunningEngine, portal: PortalStandIn, telegram: TelegramApiStandIn):
        self.engine = engine
        self.portal = portal
        self.telegram = telegram
        self.update_id = 100

    async def post(self, update: dict[str, Any]) -> tuple[int, str]:
        url = self.engine.hook_url("telegram", "tg")
        answer = await post_update(self.engine.session, url, SECRET, update)
        return answer.status, answer.text

    async def write(self, text: str) -> None:
        self.update_id += 1
        assert await self.post(message(self.update_id, text)) == (200, "")

    async def press(self, sent_index: int, data: str) -> None:
        """Press the button ``data`` under the ``sent_index``-th message sent to Telegram;
        the webhook's answer stops the button's spinner."""
        self.update_id += 1
        sent = self.sent()[sent_index]
        update = press(self.update_id, sent, 1000 + sent_index, data)
        answer = f'{{"method":"answerCallbackQuery","callback_query_id":"cbq-{self.update_id}"}}'
        assert await self.post(update) == (200, answer)

    async def call(self, method: str, path: str, data: object = None) -> Any:
        code, body = await self.engine.portal_call(self.portal, method, path, data)
        assert code in (200, 202), (method, path, code, body)
        return body

    def sent(self) -> list[dict[str, Any]]:
        return [call.params for call in self.telegram.calls_to("sendMessage")]

    def events(self) -> list[dict[str, Any]]:
        """Delivered events once each (at least once: a batch may come again)."""
        return list({event["id"]: event for event in self.portal.events}.values())

    async def until(self, count: int) -> list[tuple[str, Any]]:
        """The dialog's events once ``count`` of them arrived."""
        await self.portal.wait_for(lambda _: len(self.events()) >= count)
        return [step(event) for event in self.events()]


async def test_a_dialogs_life_with_the_lines_own_messages_and_its_bot(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    connector = {
        "id": "tg",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "bot_token": telegram.token,
            "secret_token": SECRET,
            "api_base_url": telegram.base_url,
        },
    }
    acme = portal.portal_config(linger_ms=0, lines=[{"id": "support", "name": "Acme"}])
    config = engine_config(tmp_path, [acme], [connector], {"acme-support": LINE}, clock="manual")
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    life = Life(engine, portal, telegram)
    try:
        for operator, name in (("anna", "Anna"), ("boris", "Boris")):
            await life.call("PUT", f"/api/v1/operators/{operator}/status", {"status": "online"})
            await life.call("PUT", f"/api/v1/operators/{operator}/profile", {"display_name": name})

        await life.write("Hello")
        assert await life.until(5) == [
            ("dialog.held", "bot"),
            ("message.received", "Hello"),
            ("reply.sent", "line"),  # the greeting
            ("reply.sent", "line"),  # the consent request
            ("reply.sent", "bot"),  # the bot's menu on a first message
        ]
        dialog_id = life.events()[0]["dialog"]["id"]
        await life.press(1, "ol:consent:yes")
        assert (await life.until(8))[5:] == [
            ("message.received", "✅ I agree"),
            ("dialog.consent", (True, "button")),
            ("reply.sent", "line"),
        ]
        await life.write("When do you deliver?")
        assert (await life.until(10))[8:] == [
            ("message.received", "When do you deliver?"),
            ("reply.sent", "bot"),
        ]
        await life.press(4, MENU_PAYLOADS[1])
        assert (await life.until(15))[10:] == [
            ("message.received", "👤 Operator"),
            ("dialog.handed_over", "requested"),
            ("dialog.queued", "released"),
            ("dialog.offered", ["anna"]),
            ("reply.sent", "bot"),
        ]
        released_at = life.events()[11]["occurred_at"]
        await engine.advance(61)  # nobody answered within the line's KPI of 60 s
        assert (await life.until(16))[15:] == [
            ("dialog.kpi_exceeded", ("first_answer", 60.0, 60.0))
        ]
        assert life.events()[15]["data"]["waiting_since"] == released_at

        base = f"/api/v1/dialogs/{dialog_id}"
        await life.call("POST", f"{base}/accept", {"operator_id": "anna"})
        await life.call(
            "POST", f"{base}/transfer", {"operator_id": "anna", "to_operator_id": "boris"}
        )
        await life.call("POST", f"{base}/accept", {"operator_id": "boris"})
        await life.call("POST", f"{base}/invite", {"operator_id": "boris", "invitee_id": "anna"})
        text = {"kind": "text", "text": "Your parcel is on its way."}
        await life.call("POST", f"{base}/messages", {"content": text, "operator_id": "boris"})
        assert (await life.until(23))[16:] == [
            ("dialog.assigned", "anna"),
            ("dialog.transferred", ("anna", "boris")),
            ("dialog.offered", ["boris"]),
            ("dialog.assigned", "boris"),
            ("dialog.participant_joined", "anna"),
            ("dialog.answered", "boris"),
            ("reply.sent", "operator"),
        ]
        await life.call("POST", f"{base}/finish", {"operator_id": "boris"})
        assert (await life.until(26))[23:] == [
            ("dialog.closed", "boris"),
            ("reply.sent", "line"),  # the closing text
            ("reply.sent", "line"),  # the rating request
        ]
        await life.press(8, "ol:rate:5")
        assert (await life.until(29))[26:] == [
            ("message.received", "5"),
            ("dialog.rated", ("boris", 5, "button")),
            ("reply.sent", "line"),
        ]

        assert {event["dialog"]["id"] for event in life.events()} == {dialog_id}
        held = [event["dialog"]["held"] for event in life.events()]
        assert held[:11] == ["bot"] * 11 and set(held[12:]) == {None}
        assert life.sent() == [
            said("Hello, Ann! This is Acme."),
            said("Do you agree to data processing?", CONSENT),
            said("How can I help, Ann?", MENU),
            said("Thank you!"),
            said("Delivery takes 1–2 days.", MENU),
            said("Connecting you to an operator."),
            said("Boris: Your parcel is on its way."),
            said("Thank you, Ann!"),
            said("Please rate Boris from 1 to 5.", RATING),
            said("Thanks for the rating!"),
        ]
        assert [call.method for call in telegram.calls] == ["sendMessage"] * 10
        contact_id = life.events()[0]["dialog"]["contact_id"]
        contact = await life.call("GET", f"/api/v1/contacts/{contact_id}")
        assert contact["consent"]["given"] is True
        assert contact["consent"]["dialog_id"] == dialog_id
    finally:
        await stop_engine(engine)
