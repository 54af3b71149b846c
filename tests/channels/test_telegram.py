from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import ValidationError

from channels.base import RawRequest, WebhookReply
from channels.registry import build_channel
from channels.telegram import TelegramChannel, TelegramCredentials
from channels.text_split import utf16_units
from engine.buttons.keyboard import Button, Keyboard
from engine.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    ValidationFailedError,
)
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
    ContactContent,
    Content,
    Customer,
    DialogTarget,
    FileContent,
    FileRef,
    ImageContent,
    LocationContent,
    OutboundFile,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    StickerContent,
    TextContent,
    VideoContent,
)
from tests.channels.conftest import (
    FIXED_NOW_S,
    StartWebhook,
    route_for,
    verify_and_parse,
    webhook_post,
)
from tests.standins.telegram_api import (
    RECORDED_UPDATES,
    ApiCall,
    TelegramApiStandIn,
    post_update,
    recorded_update,
)

SECRET = "webhook-Secret_0123"
CHAT = "6187743210"
ROUTE = route_for("telegram")
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=CHAT, customer_id=CHAT)
REPLY_ID = "rpl_1"


def make_channel(api_base_url: str = "https://api.telegram.org", **extra: Any) -> TelegramChannel:
    credentials = TelegramCredentials(
        bot_token="123456:stand-in-token",
        secret_token=SECRET,
        api_base_url=api_base_url,
        **extra,
    )
    return TelegramChannel(ROUTE, credentials)


def webhook_request(body: bytes | dict[str, Any], secret: str | None = SECRET) -> RawRequest:
    headers = {"x-telegram-bot-api-secret-token": secret} if secret is not None else {}
    return webhook_post("telegram", body, headers=headers)


def parse(update: dict[str, Any]) -> Any:
    return verify_and_parse(make_channel(), webhook_request(update))


def text_of(call: ApiCall) -> str:
    text: str = call.params["text"]
    return text


# --- inbound: every recorded update, normalized or ignored


EXPECTED_CONTENT: dict[str, Content] = {
    "text": TextContent(text="Hello, is the order #1042 shipped?"),
    "edited_message": TextContent(text="Hello, is the order #1043 shipped?"),
    "reply_to_message": TextContent(text="Thanks! Can it go to the pick-up point instead?"),
    "photo": ImageContent(
        file=FileRef(
            file_id="AgACAgEAAxkBAAMUadxXwhOoColswHrj6E81CWGHqDkAAiANaxvLFOFGHZBvQw1fmdsBAAMCAAN5AAM7BA",
            width_px=839,
            height_px=1280,
            size_bytes=233636,
        ),
        caption="Box arrived damaged, see photo",
    ),
    "photo_album": ImageContent(
        file=FileRef(
            file_id="AgACAgEAAxkBAAMkalbumlarge", width_px=1280, height_px=853, size_bytes=140000
        )
    ),
    "document": FileContent(
        file=FileRef(
            file_id="BQACAgIAAxkBAAIBG2ncZk1fEwABkWx3Jw6s0sYtJVa1nAACUUgAArM0YUqXGc8zAAGx6TYE",
            name="invoice_1042.pdf",
            mime_type="application/pdf",
            size_bytes=84213,
        )
    ),
    "sticker": StickerContent(
        file=FileRef(
            file_id="CAACAgIAAxkBAAMTadxW1_g25YBXugABOieyZkTPB1CyAAJQAgACVp29CoPQ1EfrOPvaOwQ",
            mime_type="application/x-tgsticker",
            size_bytes=21802,
            width_px=512,
            height_px=512,
        ),
        emoji="\U0001f42f",
    ),
    "voice": AudioContent(
        file=FileRef(
            file_id="AwACAgIAAxkBAAIBHGncZ3voice",
            mime_type="audio/ogg",
            size_bytes=23040,
            duration_s=7,
        ),
        is_voice=True,
    ),
    "audio": AudioContent(
        file=FileRef(
            file_id="CQACAgIAAxkBAAIBHWncZ4audio",
            name="hold_music.mp3",
            mime_type="audio/mpeg",
            size_bytes=2949120,
            duration_s=184,
        ),
        caption="Is this the tune you play on hold?",
    ),
    "video": VideoContent(
        file=FileRef(
            file_id="BAACAgIAAxkBAAIBHmncZ5video",
            name="unboxing.mp4",
            mime_type="video/mp4",
            size_bytes=3145728,
            width_px=1280,
            height_px=720,
            duration_s=12,
        ),
        caption="Unboxing, the corner is crushed",
    ),
    "video_note": VideoContent(
        file=FileRef(
            file_id="DQACAgIAAxkBAAIBH2ncZ6note",
            mime_type="video/mp4",
            size_bytes=412000,
            width_px=384,
            height_px=384,
            duration_s=9,
        )
    ),
    "animation": VideoContent(
        file=FileRef(
            file_id="CgACAgIAAxkBAAIBIGncZ7anim",
            name="waiting.gif.mp4",
            mime_type="video/mp4",
            size_bytes=120000,
            width_px=320,
            height_px=240,
            duration_s=3,
        )
    ),
    "location": LocationContent(latitude=52.520008, longitude=13.404954),
    "venue": LocationContent(
        latitude=52.516275,
        longitude=13.377704,
        title="Acme pick-up point",
        address="Pariser Platz 1, Berlin",
    ),
    "contact": ContactContent(
        phone="+4915112345678", first_name="Lena", last_name="Kraus", channel_user_id="5123456789"
    ),
}

EXPECTED_IGNORED = {
    "channel_post": "channel_post",
    "edited_channel_post": "edited_channel_post",
    "bot_sender": "bot_sender",
    "anonymous_admin": "chat_sender",
    "poll": "unsupported_content:poll",
    "dice": "unsupported_content:dice",
    "new_chat_members": "unsupported_content:new_chat_members",
}

RECORDED = sorted(path.stem for path in RECORDED_UPDATES.glob("*.json"))


PRESSES = ("callback_query",)
"""Recorded presses of inline buttons: messages of their own kind (below)."""


EXPECTED_EVENTS = {
    # name: (kind, dialog, customer, message ids, reaction)
    "my_chat_member": ("blocked", "6187743210", "6187743210", (), None),
    "message_reaction": ("reaction", "-1001987654321", "6187743210", ("311",), "\U0001f44d"),
}


def test_every_recorded_update_has_an_expectation() -> None:
    assert sorted([*EXPECTED_CONTENT, *EXPECTED_IGNORED, *PRESSES, *EXPECTED_EVENTS]) == RECORDED


@pytest.mark.parametrize("name", sorted(EXPECTED_EVENTS))
def test_recorded_update_is_a_channel_event_and_no_message(name: str) -> None:
    update = recorded_update(name)
    parsed = parse(update)
    assert (parsed.messages, parsed.ignored) == ((), ())
    (event,) = parsed.events
    kind, dialog, customer, ids, reaction = EXPECTED_EVENTS[name]
    assert (event.kind, event.dialog_key, event.customer_id) == (kind, dialog, customer)
    assert (event.channel_message_ids, event.reaction) == (ids, reaction)
    assert event.channel_event_id == str(update["update_id"])
    assert event.id == inbound_event_id(ROUTE.connector_id, str(update["update_id"]))
    assert event.occurred_at == update[next(k for k in update if k != "update_id")]["date"]


def membership(old: str, new: str, chat_type: str = "private") -> dict[str, Any]:
    update = recorded_update("my_chat_member")
    change = update["my_chat_member"]
    return {
        **update,
        "my_chat_member": {
            **change,
            "chat": {**change["chat"], "type": chat_type},
            "old_chat_member": {**change["old_chat_member"], "status": old},
            "new_chat_member": {**change["new_chat_member"], "status": new},
        },
    }


@pytest.mark.parametrize(
    ("update", "kind", "ignored"),
    [
        (membership("kicked", "member"), "unblocked", None),
        (membership("member", "kicked", "group"), None, "group_membership:kicked"),
        (membership("left", "member"), None, "membership:member"),
    ],
    ids=["unblocked", "group", "restart"],
)
def test_membership_changes(update: dict[str, Any], kind: str | None, ignored: str | None) -> None:
    parsed = parse(update)
    assert [e.kind for e in parsed.events] == ([kind] if kind else [])
    assert parsed.ignored == ((ignored,) if ignored else ())


def test_a_removed_reaction_has_none_and_an_anonymous_one_is_ignored() -> None:
    update = recorded_update("message_reaction")
    removed = {**update, "message_reaction": {**update["message_reaction"], "new_reaction": []}}
    (event,) = parse(removed).events
    assert (event.kind, event.reaction) == ("reaction", None)
    change = {k: v for k, v in update["message_reaction"].items() if k != "user"}
    anonymous = {**update, "message_reaction": {**change, "actor_chat": change["chat"]}}
    assert parse(anonymous).ignored == ("anonymous_reaction",)


def test_a_button_press_is_the_customers_message_and_its_webhook_answer_stops_the_spinner() -> None:
    update = recorded_update("callback_query")
    parsed = parse(update)

    (message,) = parsed.messages
    assert message.content == TextContent(text="Good")  # the label, as the customer saw it
    assert message.extras["button_payload"] == "rate:5"
    assert (message.dialog_key, message.channel_message_id) == ("6187743210", "40")
    assert message.order_key == 940961563 and message.raw == update
    assert parsed.reply == WebhookReply(
        status=200,
        body=b'{"method":"answerCallbackQuery","callback_query_id":"4382bfdwdsb323b2d9"}',
        content_type="application/json",
    )


def test_a_press_without_data_is_ignored() -> None:
    update = recorded_update("callback_query")
    del update["callback_query"]["data"]
    parsed = parse(update)
    assert (parsed.messages, parsed.ignored) == ((), ("callback_query_without_data",))


@pytest.mark.parametrize("name", sorted(EXPECTED_CONTENT))
def test_recorded_update_normalizes_to_its_content(name: str) -> None:
    update = recorded_update(name)
    parsed = parse(update)
    assert parsed.ignored == ()
    (message,) = parsed.messages
    assert message.content == EXPECTED_CONTENT[name]
    assert message.channel_event_id == str(update["update_id"])
    assert message.order_key == update["update_id"]
    assert message.id == inbound_event_id("telegram-1", str(update["update_id"]))
    assert message.raw == update
    assert (parsed.reply.status, parsed.reply.body) == (200, b"")


@pytest.mark.parametrize("name", sorted(EXPECTED_IGNORED))
def test_recorded_update_is_ignored_with_its_reason(name: str) -> None:
    parsed = parse(recorded_update(name))
    assert parsed.messages == ()
    assert parsed.ignored == (EXPECTED_IGNORED[name],)
    assert (parsed.reply.status, parsed.reply.body) == (200, b"")


def test_text_message_is_normalized_field_by_field() -> None:
    (message,) = parse(recorded_update("text")).messages
    assert message.route == ROUTE
    assert message.action == "new"
    assert message.dialog_key == CHAT
    assert message.channel_message_id == "18"
    assert message.sent_at == 1776047737
    assert message.received_at == FIXED_NOW_S
    assert message.edited_at is None
    assert message.reply_to_channel_message_id is None
    assert message.delivery == "guaranteed"
    assert message.customer == Customer(channel_user_id=CHAT, name="Mayel Espino", language="en")
    assert message.extras == {"chat_type": "private"}


def test_edited_message_keeps_the_message_id_and_dates() -> None:
    (message,) = parse(recorded_update("edited_message")).messages
    assert (message.action, message.channel_message_id) == ("edit", "18")
    assert (message.sent_at, message.edited_at) == (1776047737, 1776047802)
    assert message.id != parse(recorded_update("text")).messages[0].id


def test_group_reply_carries_quote_thread_and_profile() -> None:
    (message,) = parse(recorded_update("reply_to_message")).messages
    assert message.dialog_key == "-1001987654321"
    assert message.reply_to_channel_message_id == "311"
    assert message.customer.username == "mayel_e"
    assert message.customer.profile_url == "https://t.me/mayel_e"
    assert message.extras == {
        "chat_type": "supergroup",
        "chat_title": "Acme support group",
        "message_thread_id": "7",
    }


def test_album_photo_carries_its_media_group() -> None:
    (message,) = parse(recorded_update("photo_album")).messages
    assert message.extras["media_group_id"] == "13987654321098765"


@pytest.mark.parametrize(
    ("name", "kind"), [("animation", "animation"), ("video_note", "video_note")]
)
def test_video_variants_are_told_apart_in_extras(name: str, kind: str) -> None:
    (message,) = parse(recorded_update(name)).messages
    assert message.extras["video_kind"] == kind


def test_unknown_fields_and_update_kinds_are_tolerated() -> None:
    update = recorded_update("text")
    update["message"]["future_field"] = {"anything": [1, 2]}
    update = {"update_id": update["update_id"], "future_top_level": True, **update}
    assert parse(update).messages[0].content == TextContent(
        text="Hello, is the order #1042 shipped?"
    )
    assert parse({"update_id": 5, "business_message": {}}).ignored == (
        "unsupported_update:business_message",
    )
    assert parse({"update_id": 6}).ignored == ("unsupported_update:empty",)


# --- inbound refusals


def test_missing_secret_header_is_refused() -> None:
    with pytest.raises(AuthError, match="missing X-Telegram-Bot-Api-Secret-Token"):
        make_channel().verify(webhook_request(recorded_update("text"), secret=None))


@pytest.mark.parametrize("presented", ["wrong", SECRET + "x", SECRET[:-1], "", "s\u00e9cret"])
def test_wrong_secret_is_refused(presented: str) -> None:
    with pytest.raises(AuthError, match="does not match the secret_token"):
        make_channel().verify(webhook_request(recorded_update("text"), secret=presented))


def test_right_secret_passes() -> None:
    make_channel().verify(webhook_request(recorded_update("text")))


def test_connector_without_secret_token_refuses_to_build() -> None:
    with pytest.raises(ConfigError, match="secret_token: required for a webhook connector"):
        build_channel(ROUTE, {"bot_token": "123456:abc"})


@pytest.mark.parametrize("secret", ["has space", "x" * 257, "", "sl/ash"])
def test_secret_token_outside_telegrams_alphabet_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="secret_token"):
        TelegramCredentials(bot_token="123456:abc", secret_token=secret)


def test_credentials_hide_tokens_from_repr() -> None:
    credentials = TelegramCredentials(bot_token="123456:abc", secret_token="topsecret")
    assert "abc" not in repr(credentials) and "topsecret" not in repr(credentials)


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="malformed JSON: "):
        make_channel().parse(webhook_request(b'{"update_id": 1,'), received_at=FIXED_NOW_S)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "update: expected a JSON object, got list"),
        ({"message": {}}, r"update\.update_id: Field required"),
        ({"update_id": "940961530"}, r"update\.update_id: Input should be a valid integer"),
        (
            {"update_id": 1, "message": {"message_id": 1, "date": 1}},
            r"message\.chat: Field required",
        ),
        ({"update_id": 1, "edited_message": "text"}, "edited_message: Input should be a valid"),
    ],
)
def test_json_that_is_not_an_update_fails_validation(body: Any, error: str) -> None:
    with pytest.raises(ValidationFailedError, match=error):
        make_channel().parse(webhook_request(orjson.dumps(body)), received_at=FIXED_NOW_S)


def test_acknowledge_answers_the_empty_200_telegram_expects() -> None:
    channel = make_channel()
    parsed = channel.parse(webhook_request(recorded_update("text")), received_at=FIXED_NOW_S)
    assert channel.acknowledge(parsed, [False]) == parsed.reply == WebhookReply()


# --- the stand-in's webhook helpers, end to end through a served channel


async def test_post_update_reaches_a_channel_the_way_telegram_posts(
    session: aiohttp.ClientSession, channel_webhook: tuple[StartWebhook, list[Any]]
) -> None:
    start, parses = channel_webhook
    url = await start(make_channel())
    assert await post_update(session, url, SECRET, recorded_update("photo")) == (200, "")
    assert await post_update(session, url, None, recorded_update("photo")) == (
        401,
        "bad_signature: missing X-Telegram-Bot-Api-Secret-Token header",
    )
    assert [parsed.messages[0].channel_event_id for parsed in parses] == ["940961533"]


async def test_stand_in_delivers_to_the_webhook_set_through_the_api(
    session: aiohttp.ClientSession,
    telegram_api: TelegramApiStandIn,
    channel_webhook: tuple[StartWebhook, list[Any]],
) -> None:
    start, parses = channel_webhook
    url = await start(make_channel())
    api_url = f"{telegram_api.base_url}/bot{telegram_api.token}"
    async with session.post(f"{api_url}/setWebhook", json={"url": url, "secret_token": SECRET}):
        pass
    async with session.get(f"{api_url}/getWebhookInfo") as response:
        assert (await response.json())["result"]["url"] == url
    assert (await telegram_api.deliver(recorded_update("voice"))).status == 200
    assert isinstance(parses[0].messages[0].content, AudioContent)


async def test_stand_in_reads_form_and_query_parameters_like_telegram(
    session: aiohttp.ClientSession, telegram_api: TelegramApiStandIn
) -> None:
    api_url = f"{telegram_api.base_url}/bot{telegram_api.token}"
    form = {"chat_id": "-100200", "text": "form"}
    async with session.post(f"{api_url}/sendMessage?disable_notification=true", data=form) as r:
        sent = (await r.json())["result"]
    assert sent["chat"] == {"id": -100200, "type": "supergroup"}
    assert sent["text"] == "form"
    (call,) = telegram_api.calls
    assert call.params == {"chat_id": "-100200", "text": "form", "disable_notification": "true"}
    assert call.content_type == "application/x-www-form-urlencoded"


# --- outbound: the exact requests Telegram receives


async def send(
    api: TelegramApiStandIn, session: aiohttp.ClientSession, request: ReplyRequest, **extra: Any
) -> tuple[str, ...]:
    receipt = await make_channel(api.base_url, **extra).send(
        session, TARGET, request, reply_id=REPLY_ID
    )
    return receipt.channel_message_ids


async def test_text_is_one_send_message(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    ids = await send(telegram_api, session, ReplyRequest(content=OutboundText(text="Shipped!")))
    assert ids == ("1000",)
    (call,) = telegram_api.calls
    assert (call.method, call.content_type) == ("sendMessage", "application/json")
    assert call.params == {"chat_id": CHAT, "text": "Shipped!", "parse_mode": "HTML"}


CONSENT = Keyboard.one_row(
    (
        Button(label="✅ Yes", payload="ol:consent:yes"),
        Button(label="❌ No", payload="ol:consent:no"),
    )
)


async def test_buttons_go_as_an_inline_keyboard_under_the_last_part(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    text = "a" * 4090 + "\n\n" + "May we?"
    request = ReplyRequest(content=OutboundText(text=text), keyboard=CONSENT)
    assert await send(telegram_api, session, request) == ("1000", "1001")
    first, second = telegram_api.calls
    assert first.params == {"chat_id": CHAT, "text": "a" * 4090, "parse_mode": "HTML"}
    assert second.params == {
        "chat_id": CHAT,
        "text": "May we?",
        "parse_mode": "HTML",
        "reply_markup": {
            "inline_keyboard": [
                [
                    {"text": "✅ Yes", "callback_data": "ol:consent:yes"},
                    {"text": "❌ No", "callback_data": "ol:consent:no"},
                ]
            ]
        },
    }


async def test_reply_quotes_the_original_on_the_first_part_only(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    text = "a" * 4000 + "\n\n" + "b" * 200
    request = ReplyRequest(content=OutboundText(text=text), reply_to_channel_message_id="18")
    assert await send(telegram_api, session, request) == ("1000", "1001")
    first, second = telegram_api.calls
    assert first.params == {
        "chat_id": CHAT,
        "text": "a" * 4000,
        "parse_mode": "HTML",
        "reply_parameters": {"message_id": 18, "allow_sending_without_reply": True},
    }
    assert second.params == {"chat_id": CHAT, "text": "b" * 200, "parse_mode": "HTML"}


async def test_long_text_is_split_in_utf16_units(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    paragraph = "\U0001f4e6\U0001f1e9\U0001f1ea ok " * 200
    text = "\n\n".join([paragraph] * 5)
    assert len(text) <= 8192 < utf16_units(text)  # fits by code points, not by units
    ids = await send(telegram_api, session, ReplyRequest(content=OutboundText(text=text)))
    texts = [text_of(call) for call in telegram_api.calls_to("sendMessage")]
    assert ids == ("1000", "1001", "1002")
    # 2000 units a paragraph: two fit a message, cut at the paragraph break.
    two = paragraph + "\n\n" + paragraph.rstrip()
    assert texts == [two, two, paragraph]
    assert all(utf16_units(part) <= 4096 for part in texts)


async def test_image_with_caption_is_one_send_photo(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    image = OutboundImage(url="https://cdn.example.com/label.png", caption="Your label")
    assert await send(telegram_api, session, ReplyRequest(content=image)) == ("1000",)
    (call,) = telegram_api.calls
    assert call.method == "sendPhoto"
    assert call.params == {
        "chat_id": CHAT,
        "photo": "https://cdn.example.com/label.png",
        "caption": "Your label",
        "parse_mode": "HTML",
    }


async def test_caption_past_1024_units_follows_as_text(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    caption = "\U0001f4c4" * 513  # 1026 UTF-16 units, 513 code points
    request = ReplyRequest(
        content=OutboundFile(url="AgADfileid", caption=caption), reply_to_channel_message_id="27"
    )
    assert await send(telegram_api, session, request) == ("1000", "1001")
    document, text = telegram_api.calls
    assert (document.method, text.method) == ("sendDocument", "sendMessage")
    assert document.params == {
        "chat_id": CHAT,
        "document": "AgADfileid",
        "reply_parameters": {"message_id": 27, "allow_sending_without_reply": True},
    }
    assert text.params == {"chat_id": CHAT, "text": caption, "parse_mode": "HTML"}


async def test_file_without_caption_is_one_send_document(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    content = OutboundFile(url="https://cdn.example.com/invoice.pdf", name="invoice.pdf")
    await send(telegram_api, session, ReplyRequest(content=content))
    (call,) = telegram_api.calls
    assert call.params == {"chat_id": CHAT, "document": "https://cdn.example.com/invoice.pdf"}


async def test_blank_long_text_is_refused_before_any_call(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentSendError, match="nothing but whitespace"):
        await send(telegram_api, session, ReplyRequest(content=OutboundText(text=" " * 5000)))
    assert telegram_api.calls == []


async def test_reply_to_a_non_numeric_id_is_refused(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(content=OutboundText(text="hi"), reply_to_channel_message_id="abc")
    with pytest.raises(PermanentSendError, match="'abc' is not a Telegram message id"):
        await send(telegram_api, session, request)


# --- outbound errors


HELLO = ReplyRequest(content=OutboundText(text="hello"))


async def test_429_is_retryable_after_telegrams_delay(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.rate_limit_next(35)
    with pytest.raises(RetryableSendError, match="Too Many Requests: retry after 35") as caught:
        await send(telegram_api, session, HELLO)
    assert caught.value.retry_after_s == 35


async def test_blocked_bot_is_permanent(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.block_next()
    with pytest.raises(PermanentSendError, match="sendMessage: Forbidden: bot was blocked"):
        await send(telegram_api, session, HELLO)


async def test_server_error_is_retryable(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.fail_next(500, "Internal Server Error")
    with pytest.raises(RetryableSendError, match="Internal Server Error") as caught:
        await send(telegram_api, session, HELLO)
    assert caught.value.retry_after_s is None


async def test_migrated_group_is_permanent_and_names_the_new_chat(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.migrate_next(-1001234567890)
    with pytest.raises(PermanentSendError, match="chat migrated to -1001234567890"):
        await send(telegram_api, session, HELLO)


@pytest.mark.parametrize(
    ("status", "error"), [(502, RetryableSendError), (404, PermanentSendError)]
)
async def test_non_json_answer_is_retryable_only_for_server_errors(
    telegram_api: TelegramApiStandIn,
    session: aiohttp.ClientSession,
    status: int,
    error: type[Exception],
) -> None:
    telegram_api.break_next(status)
    with pytest.raises(error, match=f"HTTP {status} with a non-JSON body"):
        await send(telegram_api, session, HELLO)


async def test_wrong_token_is_permanent_and_never_quoted(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.token = "999:other"
    with pytest.raises(PermanentSendError, match="sendMessage: Unauthorized") as caught:
        await send(telegram_api, session, HELLO)
    assert "stand-in-token" not in str(caught.value)


async def test_connection_refused_is_retryable(
    session: aiohttp.ClientSession, closed_port_url: str
) -> None:
    channel = make_channel(closed_port_url)
    with pytest.raises(RetryableSendError, match="sendMessage: ClientConnectorError") as caught:
        await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)
    assert "stand-in-token" not in str(caught.value)


async def test_timeout_is_retryable(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    telegram_api.fail_next(500, "never seen", delay_s=5)
    with pytest.raises(RetryableSendError, match=r"sendMessage: .*Timeout"):
        await send(telegram_api, session, HELLO, request_timeout_s=0.2)


# --- split messages that fail half-way

THREE_PARTS = ReplyRequest(content=OutboundText(text="\n\n".join(["x" * 4000] * 3)))


async def test_retry_after_a_failed_part_resumes_where_it_stopped(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(telegram_api.base_url)
    telegram_api.rate_limit_next(3, after_calls=1)
    with pytest.raises(RetryableSendError, match="part 2 of 3 failed after 1 sent") as caught:
        await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert caught.value.retry_after_s == 3
    receipt = await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert receipt.channel_message_ids == ("1000", "1001", "1002")
    assert len(telegram_api.calls) == 4  # part 2 twice (refused, then sent), parts 1 and 3 once
    assert [text_of(call) for call in telegram_api.calls] == ["x" * 4000] * 4


async def test_permanent_failure_of_a_later_part_says_what_went_out(
    telegram_api: TelegramApiStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(telegram_api.base_url)
    telegram_api.block_next(after_calls=2)
    with pytest.raises(PermanentSendError, match=r"part 3 of 3 failed after 2 sent: .*blocked"):
        await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert len(telegram_api.calls) == 3 + 3  # nothing remembered: a new send starts over


@pytest.mark.parametrize(("update_id", "kept"), [(2**63 - 1, True), (2**63, False), (-1, False)])
def test_an_update_id_the_store_cannot_keep_is_ignored_with_a_200(
    update_id: int, kept: bool
) -> None:
    """Telegram resends a refused update and holds the bot's later ones behind it."""
    parsed = parse({**recorded_update("text"), "update_id": update_id})
    if kept:
        assert [m.order_key for m in parsed.messages] == [update_id]
    else:
        assert parsed.messages == () and parsed.ignored == ("out_of_range:update_id",)
