"""WhatsApp Cloud API: every recorded notification, and /messages against the Graph stand-in."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.base import WebhookParse
from channels.meta.whatsapp import WhatsAppChannel, WhatsAppCredentials, order_key
from engine.buttons.keyboard import Button, Keyboard
from engine.errors import AuthError, PermanentSendError, RetryableSendError, ValidationFailedError
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
from tests.channels.conftest import FIXED_NOW_S, route_for, webhook_post
from tests.channels.meta_kit import parse_with, rows
from tests.standins.meta_api import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    RECORDED,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
    encode,
    recorded,
    recorded_json,
)

ROUTE = route_for("whatsapp")
CUSTOMER = "16505551234"
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=CUSTOMER, customer_id="c1")
WINDOW_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number."
)


def make_channel(graph_api_url: str = "https://graph.facebook.com/v21.0") -> WhatsAppChannel:
    credentials = WhatsAppCredentials(
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        access_token=WA_TOKEN,
        graph_api_url=graph_api_url,
    )
    return WhatsAppChannel(ROUTE, credentials)


def parse(name_or_body: str | bytes) -> WebhookParse:
    return parse_with(make_channel(), name_or_body)


def media(file_id: str = "1100223344556677", **fields: Any) -> FileRef:
    return FileRef(file_id=file_id, **fields)


EXPECTED_MESSAGES: dict[str, list[tuple[str, Content]]] = {
    "wa_text": [
        (
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            TextContent(text="Does it come in navy?"),
        )
    ],
    "wa_image": [
        (
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
            ImageContent(
                file=media("2754859441498128", mime_type="image/jpeg"),
                caption="This one, the navy parka",
            ),
        )
    ],
    "wa_video": [
        ("wamid.TEST1", VideoContent(file=media(mime_type="video/mp4"), caption="Unboxing"))
    ],
    "wa_voice": [
        (
            "wamid.TEST2",
            AudioContent(file=media(mime_type="audio/ogg; codecs=opus"), is_voice=True),
        )
    ],
    "wa_document": [
        (
            "wamid.TEST3",
            FileContent(
                file=media(name="счёт-8812.pdf", mime_type="application/pdf"), caption="Invoice"
            ),
        )
    ],
    "wa_sticker": [("wamid.TEST4", StickerContent(file=media(mime_type="image/webp")))],
    "wa_location": [
        (
            "wamid.TEST5",
            LocationContent(
                latitude=55.7558, longitude=37.6173, title="Красная площадь", address="Москва"
            ),
        )
    ],
    "wa_contacts": [
        (
            "wamid.TEST6",
            ContactContent(
                phone="+7 916 123-45-67",
                first_name="Anna",
                last_name="Petrova",
                channel_user_id="79161234567",
            ),
        )
    ],
    "wa_button_reply": [("wamid.TEST7", TextContent(text="Отлично"))],
    "wa_list_reply": [("wamid.TEST8", TextContent(text="Delivery"))],
    "wa_template_button": [("wamid.TEST9", TextContent(text="Yes"))],
    "wa_duplicate": [("wamid.TEST12", TextContent(text="twice"))],
    "wa_username": [("wamid.TEST13", TextContent(text="hi from a username"))],
    "wa_cyrillic_emoji": [("wamid.TEST14", TextContent(text="Есть в синем? 💙🧥"))],
    "wa_bad_message": [("wamid.TEST18", TextContent(text="fine"))],
}
OUR_WAMID = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI0QTI4RjQ0QzJBRkQ2NkNGQ0UA"
EXPECTED_EVENTS: dict[str, list[tuple[str, str, tuple[str, ...], str | None, str | None]]] = {
    "wa_reaction": [
        (
            "reaction",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQjFBMjM0NUQ2Nzg5MEVGMTIzNAA=",
            ("wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQUZCMTY0MDc2MUYwNzBDNTY5MAA=",),
            "👍",
            None,
        )
    ],
    "wa_status_delivered": [("delivered", f"{OUR_WAMID}:delivered", (OUR_WAMID,), None, None)],
    "wa_status_failed": [
        (
            "failed",
            f"{OUR_WAMID}:failed",
            (OUR_WAMID,),
            None,
            f"Re-engagement message: {WINDOW_DETAILS} [code 131047]",
        )
    ],
}
EXPECTED_IGNORED: dict[str, tuple[str, ...]] = {
    "wa_unsupported": ("unsupported_content:unsupported",),
    "wa_system": ("unsupported_content:system",),
    "wa_duplicate": ("duplicate",),
    "wa_other_number": ("other_account",),
    "wa_group": ("group_message",),
    "wa_bad_message": ("invalid_event:message",),
    "wa_system_error": ("system_error",),
}
NAMES = sorted(set(EXPECTED_MESSAGES) | set(EXPECTED_IGNORED) | set(EXPECTED_EVENTS))


def test_every_recorded_whatsapp_notification_has_an_expectation() -> None:
    assert {path.stem for path in RECORDED.glob("wa_*.json")} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recorded_notification_normalizes(name: str) -> None:
    parsed = parse(name)
    assert rows(parsed.messages, "channel_event_id", "content") == EXPECTED_MESSAGES.get(name, [])
    event_fields = ("kind", "channel_event_id", "channel_message_ids", "reaction", "reason")
    assert rows(parsed.events, *event_fields) == EXPECTED_EVENTS.get(name, [])
    assert (parsed.ignored, parsed.reply.status) == (EXPECTED_IGNORED.get(name, ()), 200)
    assert all(e.dialog_key == e.customer_id == CUSTOMER for e in parsed.events)
    for message in parsed.messages:
        assert message.id == inbound_event_id("whatsapp-1", message.channel_event_id)
        assert message.action == "new"


def test_text_message_field_by_field() -> None:
    (message,) = parse("wa_text").messages
    wamid = message.channel_message_id
    assert message.dialog_key == CUSTOMER
    assert message.customer == Customer(
        channel_user_id=CUSTOMER, name="Sheena Nelson", phone="+16505551234"
    )
    assert (message.sent_at, message.received_at) == (1749416383.0, FIXED_NOW_S)
    assert message.order_key == order_key(1749416383, wamid)
    assert (
        message.raw
        == recorded_json("wa_text.json")["entry"][0]["changes"][0]["value"]["messages"][0]
    )


def test_button_presses_carry_their_payload_and_replies_their_context() -> None:
    (button,) = parse("wa_button_reply").messages
    (listed,) = parse("wa_list_reply").messages
    (template,) = parse("wa_template_button").messages
    assert button.extras == {"button_payload": "ol:rate:5"}
    assert listed.extras == {"button_payload": "ol:bot:delivery"}
    assert template.extras == {"button_payload": "ol:consent:yes"}
    assert button.reply_to_channel_message_id == "wamid.OURS1"


def test_a_username_customer_is_addressed_by_user_id() -> None:
    (message,) = parse("wa_username").messages
    assert message.dialog_key == "US.13491208655302741918"
    assert message.customer == Customer(
        channel_user_id="US.13491208655302741918", name="Kai", username="kai.dev"
    )


def test_a_removed_reaction_and_a_sent_status() -> None:
    body = recorded_json("wa_reaction.json")
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["emoji"]
    (event,) = parse(encode(body)).events
    assert (event.kind, event.reaction) == ("reaction", None)
    body = recorded_json("wa_status_delivered.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "sent"
    parsed = parse(encode(body))
    assert (parsed.events, parsed.ignored) == ((), ("status:sent",))


def test_other_fields_and_wrong_objects() -> None:
    body = recorded_json("wa_text.json")
    body["entry"][0]["changes"][0]["field"] = "account_update"
    assert parse(encode(body)).ignored == ("field:account_update",)
    with pytest.raises(ValidationFailedError, match="this connector reads"):
        parse(recorded("fb_text.json"))


def test_signature_is_required() -> None:
    with pytest.raises(AuthError, match="missing X-Hub-Signature-256"):
        make_channel().verify(webhook_post("whatsapp", recorded("wa_text.json")))


# --- outbound


async def test_text_reply_quotes_the_customer_message(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    request = ReplyRequest(
        content=OutboundText(text="Да, синий есть 💙"), reply_to_channel_message_id="wamid.X1"
    )
    receipt = await channel.send(session, TARGET, request, reply_id="r1")
    assert receipt.channel_message_ids == ("wamid.STANDIN00000001",)
    (call,) = meta_graph.calls
    assert (call.node, call.token) == (PHONE_NUMBER_ID, WA_TOKEN)
    assert call.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"preview_url": False, "body": "Да, синий есть 💙"},
        "context": {"message_id": "wamid.X1"},
    }


async def test_media_by_link_or_id_and_a_long_caption(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    await channel.send(
        session,
        TARGET,
        ReplyRequest(content=OutboundImage(url="https://shop.example.com/a.jpg", caption="Navy")),
        reply_id="r1",
    )
    await channel.send(
        session,
        TARGET,
        ReplyRequest(
            content=OutboundFile(url="3380112233", name="invoice.pdf", caption="x" * 1500)
        ),
        reply_id="r2",
    )
    bodies = meta_graph.sent()
    assert bodies[0]["image"] == {"link": "https://shop.example.com/a.jpg", "caption": "Navy"}
    assert bodies[1]["document"] == {"id": "3380112233", "filename": "invoice.pdf"}
    assert bodies[2]["text"]["body"] == "x" * 1500


async def test_username_customers_go_by_recipient(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    target = TARGET.model_copy(update={"dialog_key": "US.13491208655302741918"})
    await make_channel(meta_graph.graph_api_url).send(
        session, target, ReplyRequest(content=OutboundText(text="hi")), reply_id="r1"
    )
    body = meta_graph.sent()[0]
    assert body["recipient"] == "US.13491208655302741918" and "to" not in body


async def test_buttons_are_reply_buttons_up_to_three(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    labels = ["Плохо", "Нормально", "Отлично"]
    row = tuple(Button(label=label, payload=f"ol:rate:{i}") for i, label in enumerate(labels))
    request = ReplyRequest(content=OutboundText(text="Оцените"), keyboard=Keyboard.one_row(row))
    await channel.send(session, TARGET, request, reply_id="r1")
    body = meta_graph.sent()[0]
    assert body["type"] == "interactive"
    assert body["interactive"]["body"] == {"text": "Оцените"}
    assert [b["reply"] for b in body["interactive"]["action"]["buttons"]] == [
        {"id": f"ol:rate:{i}", "title": label} for i, label in enumerate(labels)
    ]
    four = Keyboard.one_row((*row, Button(label="Супер", payload="ol:rate:3")))
    await channel.send(
        session,
        TARGET,
        ReplyRequest(content=OutboundText(text="Оцените"), keyboard=four),
        reply_id="r2",
    )
    numbered = meta_graph.sent()[1]
    assert numbered["type"] == "text" and "4. Супер" in numbered["text"]["body"]


@pytest.mark.parametrize(
    ("code", "details", "error", "match"),
    [
        (
            131047,
            WINDOW_DETAILS,
            PermanentSendError,
            "only a template passes.*24 hours have passed",
        ),
        (131026, None, PermanentSendError, "undeliverable"),
        (130429, None, RetryableSendError, "code 130429"),
        (131056, None, RetryableSendError, "code 131056"),
    ],
)
async def test_cloud_api_errors(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    code: int,
    details: str | None,
    error: type[Exception],
    match: str,
) -> None:
    meta_graph.fail_next(code, f"(#{code}) error", details=details)
    with pytest.raises(error, match=match):
        await make_channel(meta_graph.graph_api_url).send(
            session, TARGET, ReplyRequest(content=OutboundText(text="hi")), reply_id="r1"
        )


async def test_a_wrong_token_is_permanent(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    wrong = WhatsAppChannel(
        ROUTE, channel.credentials.model_copy(update={"access_token": "EAAG-wrong"})
    )
    with pytest.raises(PermanentSendError, match="reconnect the channel"):
        await wrong.send(
            session, TARGET, ReplyRequest(content=OutboundText(text="hi")), reply_id="r"
        )
