"""Facebook Messenger: every recorded notification, the signature, and the Send API against
the Graph stand-in."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from channels.base import RawRequest, WebhookParse
from channels.meta.facebook import FacebookChannel, FacebookCredentials
from channels.meta.messaging import order_key
from channels.registry import build_channel
from engine.buttons.keyboard import Button, Keyboard
from engine.errors import (
    AuthError,
    BadRequestError,
    PermanentSendError,
    RetryableSendError,
    ValidationFailedError,
)
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
    Content,
    DialogTarget,
    FileContent,
    FileRef,
    ImageContent,
    LocationContent,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    StickerContent,
    TextContent,
    VideoContent,
)
from tests.channels import meta_kit
from tests.channels.conftest import FIXED_NOW_S, route_for, verify_and_parse, webhook_post
from tests.channels.meta_kit import parse_with, rows
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    PSID_EXAMPLE,
    RECORDED,
    VERIFY_TOKEN,
    MetaGraphStandIn,
    encode,
    recorded,
    recorded_json,
    signed_headers,
)

ROUTE = route_for("facebook")
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=PSID_EXAMPLE, customer_id="c1")
FIRST_MID = (
    "m_G7806MxRRtEYRbaFW9DwQhGzibAfjF_0k8aXBtCrvhCCBUkL2hQxQYVrwMAV-oVdDMDMUsN7b8NAhW6kufP2Mw"
)
IMAGE_URL = "https://scontent.xx.fbcdn.net/v/t1.15752-9/394876_1083736_n.jpg?_nc_cat=105&oh=00_AfB1&oe=65723DB2"


def make_channel(
    graph_api_url: str = "https://graph.facebook.com/v21.0", **extra: Any
) -> FacebookChannel:
    fields: dict[str, Any] = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "app_id": APP_ID,
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "graph_api_url": graph_api_url,
    }
    credentials = FacebookCredentials(**{**fields, **extra})
    return FacebookChannel(ROUTE, credentials)


def signed(body: bytes) -> RawRequest:
    return meta_kit.signed("facebook", body)


def parse(name_or_body: str | bytes) -> WebhookParse:
    return parse_with(make_channel(), name_or_body)


def file(url: str) -> FileRef:
    return FileRef(file_id=url, url=url)


# --- inbound: each recorded notification, as (event id, action, content) or ignore reasons

CDN = "https://cdn.fbsbx.com/v"
EXPECTED_MESSAGES: dict[str, list[tuple[str, str, Content | None]]] = {
    "fb_text": [(FIRST_MID, "new", TextContent(text="Do you deliver on weekends?"))],
    "fb_image": [
        (
            "m_QyS8Dx5kB9wW0TyvL1Z7mGzibAfjF_0k8aXBtCrvhB3c2e8q1xY4pZyK0qv6k9Lr3vYt5EaJ8dM2nHcE1xw",
            "new",
            ImageContent(file=file(IMAGE_URL)),
        )
    ],
    "fb_edit": [(f"{FIRST_MID}#edit1", "edit", TextContent(text="Do you deliver on Sundays?"))],
    "fb_quick_reply": [("m_qr1", "new", TextContent(text="Yes"))],
    "fb_reply_to": [("m_rt1", "new", TextContent(text="And on Sundays?"))],
    "fb_postback": [("m_pb1", "new", TextContent(text="Talk to an operator"))],
    "fb_sticker": [
        (
            "m_st1",
            "new",
            StickerContent(
                file=FileRef(
                    file_id="369239263222822",
                    url="https://scontent.xx.fbcdn.net/v/t39.1997-6/39178562_1505197616293642_n.png",
                ),
                emoji="👍",
            ),
        )
    ],
    "fb_location": [
        (
            "m_loc1",
            "new",
            LocationContent(latitude=52.520008, longitude=13.404954, title="Pinned Location"),
        )
    ],
    "fb_cyrillic_emoji": [
        ("m_ru1", "new", TextContent(text="Здравствуйте! Где мой заказ? 📦 ça marche 👍🏽"))
    ],
    "fb_attachments": [
        ("m_multi1", "new", ImageContent(file=file("https://scontent.xx.fbcdn.net/v/a.jpg"))),
        ("m_multi1#1", "new", VideoContent(file=file("https://video.xx.fbcdn.net/v/b.mp4"))),
        ("m_multi1#2", "new", AudioContent(file=file(f"{CDN}/c.mp4"))),
        ("m_multi1#3", "new", FileContent(file=file(f"{CDN}/invoice.pdf"))),
        ("m_multi1#4", "new", TextContent(text="Our shop\nhttps://shop.example.com/p/1")),
    ],
    "fb_batch": [
        ("m_b1", "new", TextContent(text="first")),
        ("m_b2", "new", TextContent(text="second")),
    ],
}
EXPECTED_IGNORED: dict[str, tuple[str, ...]] = {
    "fb_echo": ("echo",),
    "fb_batch": ("other_account",),
}
DELIVERED_MID = "m_JOIfPCZ0ZdEfzVAKbf-q7xGzibAfjF_0k8aXBtCrvhBE65I3pgY8x0JgCRNU0ufc"
EXPECTED_EVENTS: dict[str, list[tuple[str, str, tuple[str, ...], float | None, str | None]]] = {
    "fb_delivery": [
        (
            "delivered",
            f"delivered:{PSID_EXAMPLE}:1698636946713",
            (DELIVERED_MID,),
            1698636946.713,
            None,
        )
    ],
    "fb_read": [("read", f"read:{PSID_EXAMPLE}:1698636960806", (), 1698636960.806, None)],
    "fb_reaction": [
        ("reaction", f"reaction:{PSID_EXAMPLE}:1698638000463", (DELIVERED_MID,), None, "❤️")
    ],
    "fb_optin": [("opted_in", f"optin:{PSID_EXAMPLE}:1698637800800", (), None, None)],
    "fb_inbox_echo": [("sent_elsewhere", "m_inbox1:sent_elsewhere", ("m_inbox1",), None, None)],
    "fb_batch": [("read", f"read:{PSID_EXAMPLE}:1698637899000", (), 1698637899.0, None)],
    # Standby (handover protocol: another app owns the conversation): no customer message.
    "fb_standby_text": [("standby", "m_standby_1:standby", ("m_standby_1",), None, None)],
    "fb_standby_postback": [("standby", "m_standby_pb:standby", ("m_standby_pb",), None, None)],
    "fb_standby_echo": [
        ("sent_elsewhere", "m_standby_echo:sent_elsewhere", ("m_standby_echo",), None, None)
    ],
    "fb_standby_read": [("read", f"read:{PSID_EXAMPLE}:1698637830000", (), 1698637830.0, None)],
}
ALL_NAMES = sorted(set(EXPECTED_MESSAGES) | set(EXPECTED_IGNORED) | set(EXPECTED_EVENTS))


def test_every_recorded_facebook_notification_has_an_expectation() -> None:
    names = {path.stem for path in RECORDED.glob("fb_*.json") if "feed" not in path.stem}
    assert names == set(ALL_NAMES)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_recorded_notification_normalizes(name: str) -> None:
    parsed = parse(name)
    assert rows(parsed.messages, "channel_event_id", "action", "content") == EXPECTED_MESSAGES.get(
        name, []
    )
    event_fields = ("kind", "channel_event_id", "channel_message_ids", "watermark", "reaction")
    assert rows(parsed.events, *event_fields) == EXPECTED_EVENTS.get(name, [])
    assert (parsed.ignored, parsed.reply.status) == (EXPECTED_IGNORED.get(name, ()), 200)
    assert all(e.dialog_key == e.customer_id == PSID_EXAMPLE for e in parsed.events)
    for message in parsed.messages:
        assert message.id == inbound_event_id("facebook-1", message.channel_event_id)
        assert message.channel_message_id == message.channel_event_id.split("#")[0]


def test_a_standby_message_tells_the_operator_and_counts_for_the_window() -> None:
    [text] = parse("fb_standby_text").events
    assert text.extras == {"text": "А оператор? 🙋"} and text.opens_window
    assert text.occurred_at == 1698637800.838
    [press] = parse("fb_standby_postback").events
    assert press.extras == {"text": "Talk to a human", "button_payload": "HUMAN"}
    assert press.opens_window
    [echo] = parse("fb_standby_echo").events
    assert echo.extras == {"text": "Anna from the inbox here"} and not echo.opens_window
    [read] = parse("fb_standby_read").events
    assert not read.opens_window


def test_text_message_field_by_field() -> None:
    (message,) = parse("fb_text").messages
    assert message.dialog_key == PSID_EXAMPLE
    assert message.customer.channel_user_id == PSID_EXAMPLE
    assert message.sent_at == 1698637600.838
    assert message.received_at == FIXED_NOW_S
    assert message.order_key == order_key(1698637600838, FIRST_MID)
    assert message.raw == recorded_json("fb_text.json")["entry"][0]["messaging"][0]


def test_quick_reply_and_postback_carry_the_button_payload() -> None:
    (quick,) = parse("fb_quick_reply").messages
    (postback,) = parse("fb_postback").messages
    assert quick.extras == {"button_payload": "ol:consent:yes"}
    assert postback.extras == {"button_payload": "ol:bot:operator"}


def test_reply_to_and_edit_keep_the_message_ids() -> None:
    (reply,) = parse("fb_reply_to").messages
    (edit,) = parse("fb_edit").messages
    assert reply.reply_to_channel_message_id == FIRST_MID
    assert (edit.channel_message_id, edit.edited_at) == (FIRST_MID, 1698638099.012)


def test_a_retried_notification_gives_the_same_ids() -> None:
    first = [m.id for m in parse("fb_attachments").messages]
    again = [m.id for m in parse("fb_attachments").messages]
    assert first == again and len(set(first)) == 5


def test_our_echo_is_ignored_and_an_inbox_echo_reaches_the_operator() -> None:
    (event,) = parse("fb_inbox_echo").events
    assert event.extras == {"text": "Hi, this is Anna from the shop."}
    assert event.occurred_at == 1702033800.0
    body = recorded_json("fb_echo.json")
    body["entry"][0]["messaging"][0]["message"]["app_id"] = 263902037430900  # another app
    (other,) = parse(encode(body)).events
    assert other.extras == {"text": "Our operator will reply shortly.", "app_id": "263902037430900"}
    assert other.kind == "sent_elsewhere" and other.dialog_key == PSID_EXAMPLE
    channel = FacebookChannel(ROUTE, make_channel().credentials.model_copy(update={"app_id": None}))
    parsed = verify_and_parse(channel, signed(recorded("fb_echo.json")))
    assert [e.kind for e in parsed.events] == ["sent_elsewhere"]  # without app_id, all are


def test_unknown_fields_are_tolerated_and_a_bad_event_fails_only_itself() -> None:
    body = recorded_json("fb_batch.json")
    body["entry"][0]["messaging"][0]["message"]["future"] = {"x": 1}
    body["entry"][0]["future"] = [1]
    body["entry"][2]["messaging"].insert(0, {"sender": {}, "recipient": {"id": PAGE_ID}})
    parsed = parse(encode(body))
    assert [m.channel_event_id for m in parsed.messages] == ["m_b1", "m_b2"]
    assert parsed.ignored == ("other_account", "invalid_event:messaging")
    assert [e.kind for e in parsed.events] == ["read"]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("referral", {"referral": {"ref": "ad-42", "source": "ADS", "type": "OPEN_THREAD"}}),
        ("pass_thread_control", {"pass_thread_control": {"new_owner_app_id": "263902037430900"}}),
        ("game_play", {"game_play": {"game_id": "1", "score": 3}}),
    ],
)
def test_event_kinds_the_engine_does_not_read_are_ignored_with_a_200(
    kind: str, body: dict[str, Any]
) -> None:
    event = {"sender": {"id": PSID_EXAMPLE}, "recipient": {"id": PAGE_ID}, "timestamp": 1, **body}
    parsed = parse(encode({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [event]}]}))
    assert (parsed.messages, parsed.events) == ((), ())
    assert parsed.ignored == (f"unsupported_event:{kind}",)
    assert parsed.reply.status == 200


def test_ids_sent_as_numbers_become_strings() -> None:
    body = recorded_json("fb_text.json")
    event = body["entry"][0]["messaging"][0]
    body["entry"][0]["id"] = int(PAGE_ID)
    event["sender"]["id"] = int(PSID_EXAMPLE)
    (message,) = parse(encode(body)).messages
    assert message.dialog_key == PSID_EXAMPLE


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (b"{not json", BadRequestError, "malformed JSON"),
        (b"[1, 2]", ValidationFailedError, "expected a JSON object"),
        (b'{"object": "page"}', ValidationFailedError, "notification.entry: Field required"),
        (
            b'{"object": "instagram", "entry": []}',
            ValidationFailedError,
            "object 'instagram', this connector reads 'page'",
        ),
    ],
)
def test_bodies_that_are_not_a_page_notification_are_refused(
    body: bytes, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse(body)


# --- the signature, on the raw bytes


def test_signature_is_checked_over_the_exact_bytes_received() -> None:
    body = recorded("fb_cyrillic_emoji.json")
    channel = make_channel()
    channel.verify(signed(body))
    reencoded = json.dumps(json.loads(body), ensure_ascii=False).encode()
    tampered = body.replace(b"m_ru1", b"m_ru2")
    for forged in (reencoded, tampered):
        request = webhook_post("facebook", forged, headers=dict(signed(body).headers))
        with pytest.raises(AuthError, match="does not match the body"):
            channel.verify(request)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "missing X-Hub-Signature-256"),
        ({"x-hub-signature": "sha1=0123"}, "only the SHA-1 X-Hub-Signature was sent"),
        ({"x-hub-signature-256": "sha256=00"}, "does not match"),
        ({"x-hub-signature-256": "sha1=" + "0" * 64}, "does not match"),
        ({"x-hub-signature-256": "é"}, "does not match"),
    ],
)
def test_missing_or_wrong_signatures_are_refused(headers: dict[str, str], match: str) -> None:
    with pytest.raises(AuthError, match=match):
        make_channel().verify(webhook_post("facebook", recorded("fb_text.json"), headers=headers))


def test_another_apps_secret_does_not_verify() -> None:
    body = recorded("fb_text.json")
    headers = {k.lower(): v for k, v in signed_headers(body, app_secret="other-secret").items()}
    with pytest.raises(AuthError):
        make_channel().verify(webhook_post("facebook", body, headers=headers))


def test_credentials_are_validated_by_the_registry() -> None:
    channel = build_channel(
        ROUTE,
        {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "page_id": PAGE_ID,
            "page_access_token": PAGE_TOKEN,
        },
    )
    assert isinstance(channel, FacebookChannel)
    assert FacebookChannel.reply_window_s == 24 * 3600
    assert PAGE_TOKEN not in repr(channel.credentials)
    with pytest.raises(Exception, match="page_id"):
        build_channel(
            ROUTE,
            {"app_secret": "s", "verify_token": "v", "page_id": "page-1", "page_access_token": "t"},
        )


# --- outbound: the Send API


async def send(
    channel: FacebookChannel, session: aiohttp.ClientSession, request: ReplyRequest
) -> tuple[str, ...]:
    receipt = await channel.send(session, TARGET, request, reply_id="rpl_1")
    return receipt.channel_message_ids


async def test_text_reply_is_a_response_to_the_psid(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    ids = await send(channel, session, ReplyRequest(content=OutboundText(text="Привет 👋")))
    assert ids == ("m_stand-in-1",)
    (call,) = meta_graph.calls
    assert (call.node, call.edge, call.token) == (PAGE_ID, "messages", PAGE_TOKEN)
    assert call.body == {
        "recipient": {"id": PSID_EXAMPLE},
        "messaging_type": "RESPONSE",
        "message": {"text": "Привет 👋"},
    }


async def test_long_text_is_split_and_picture_caption_follows_as_text(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    long_text = " ".join(["доставка"] * 500)  # 4499 characters
    ids = await send(channel, session, ReplyRequest(content=OutboundText(text=long_text)))
    texts = [body["message"]["text"] for body in meta_graph.sent()]
    assert len(ids) == len(texts) == 3
    assert all(len(text) <= 2000 for text in texts)
    assert " ".join(texts) == long_text
    picture = OutboundImage(url="https://shop.example.com/navy.jpg", caption="Navy, size M")
    await send(channel, session, ReplyRequest(content=picture))
    assert [body["message"] for body in meta_graph.sent()[3:]] == [
        {"attachment": {"type": "image", "payload": {"url": picture.url, "is_reusable": True}}},
        {"text": "Navy, size M"},
    ]


async def test_buttons_go_as_quick_replies_or_numbered_text(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    yes, no = (
        Button(label="Да", payload="ol:consent:yes"),
        Button(label="Нет", payload="ol:consent:no"),
    )
    keyboard = Keyboard.one_row((yes, no))
    await send(
        channel, session, ReplyRequest(content=OutboundText(text="Согласны?"), keyboard=keyboard)
    )
    assert meta_graph.sent()[0]["message"] == {
        "text": "Согласны?",
        "quick_replies": [
            {"content_type": "text", "title": "Да", "payload": "ol:consent:yes"},
            {"content_type": "text", "title": "Нет", "payload": "ol:consent:no"},
        ],
    }
    wide = Keyboard.one_row((Button(label="A label far longer than twenty", payload="ol:x:a"),))
    await send(channel, session, ReplyRequest(content=OutboundText(text="Pick"), keyboard=wide))
    message = meta_graph.sent()[1]["message"]
    assert "quick_replies" not in message and "1. A label far longer" in message["text"]


async def test_a_configured_tag_sends_every_reply_as_message_tag(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url, message_tag="HUMAN_AGENT")
    await send(channel, session, ReplyRequest(content=OutboundText(text="Still there?")))
    body = meta_graph.sent()[0]
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize(
    ("script", "error", "match"),
    [
        (
            {
                "code": 10,
                "subcode": 2018278,
                "message": "(#10) This message is sent outside of allowed window.",
            },
            PermanentSendError,
            r"outside the 24-hour messaging window.*\[code 10/2018278, fbtrace_id ",
        ),
        (
            {"code": 551, "subcode": 1545041, "message": "This person isn't available right now."},
            PermanentSendError,
            "blocked the page or left",
        ),
        (
            {"code": 190, "message": "Error validating access token"},
            PermanentSendError,
            "reconnect",
        ),
        (
            {"code": 2, "message": "Service temporarily unavailable", "status": 500},
            RetryableSendError,
            "code 2",
        ),
        (
            {"code": 4, "message": "(#4) Application request limit reached"},
            RetryableSendError,
            "code 4",
        ),
    ],
)
async def test_graph_errors_map_to_what_the_engine_does(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    script: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    meta_graph.fail_next(
        script["code"],
        script["message"],
        subcode=script.get("subcode"),
        status=script.get("status", 400),
    )
    with pytest.raises(error, match=match):
        await send(
            make_channel(meta_graph.graph_api_url),
            session,
            ReplyRequest(content=OutboundText(text="hi")),
        )


async def test_throttling_is_retried_after_the_time_meta_gives(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    meta_graph.throttle_next(613, regain_minutes=3)
    with pytest.raises(RetryableSendError, match="rate limit") as caught:
        await send(
            make_channel(meta_graph.graph_api_url),
            session,
            ReplyRequest(content=OutboundText(text="hi")),
        )
    assert caught.value.retry_after_s == 180


async def test_a_proxy_page_and_a_bad_token_are_told_apart(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    meta_graph.break_next(502)
    request = ReplyRequest(content=OutboundText(text="hi"))
    with pytest.raises(RetryableSendError, match="HTTP 502 with a non-JSON body"):
        await send(make_channel(meta_graph.graph_api_url), session, request)
    wrong = make_channel(meta_graph.graph_api_url, page_access_token="EAAG-wrong")
    with pytest.raises(PermanentSendError, match="code 190"):
        await send(wrong, session, request)


async def test_a_reply_that_failed_part_way_resumes_at_the_failed_part(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    request = ReplyRequest(content=OutboundText(text=" ".join(f"слово{i}" for i in range(500))))
    meta_graph.throttle_next(613, after_calls=1)
    with pytest.raises(RetryableSendError, match="part 2 of 3 failed after 1 sent"):
        await send(channel, session, request)
    ids = await send(channel, session, request)
    texts = [body["message"]["text"] for body in meta_graph.sent()]
    assert len(ids) == 3 and len(texts) == 4  # part 2 was tried twice, part 1 sent once
    assert texts[1] == texts[2] and texts[0] != texts[1]
