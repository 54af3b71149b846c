from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from channels.base import RawRequest, WebhookReply
from channels.registry import build_channel
from channels.text_split import utf16_units
from channels.viber import ViberChannel, ViberCredentials, check_response, order_key
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
from tests.standins.viber_api import (
    DEFAULT_TOKEN,
    RECORDED_EVENTS,
    ViberApiStandIn,
    post_event,
    recorded_event,
    signature,
)

TOKEN = DEFAULT_TOKEN
USER = "u2NYcWleYQgJQkgYdDhfzg=="
ROUTE = route_for("viber")
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=USER, customer_id=USER)
REPLY_ID = "rpl_1"


def make_channel(api_base_url: str = "https://chatapi.viber.com", **extra: Any) -> ViberChannel:
    credentials = ViberCredentials(auth_token=TOKEN, api_base_url=api_base_url, **extra)
    return ViberChannel(ROUTE, credentials)


def signed_request(
    body: bytes | dict[str, Any], *, header: str | None = None, query_sig: str | None = None
) -> RawRequest:
    """A callback request, signed in the header unless a header or ``sig`` is given."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers: dict[str, str] = {}
    if header is not None:
        headers["x-viber-content-signature"] = header
    elif query_sig is None:
        headers["x-viber-content-signature"] = signature(TOKEN, raw)
    query = {"sig": query_sig} if query_sig is not None else {}
    return webhook_post("viber", raw, headers=headers, query=query)


def parse(event: dict[str, Any] | bytes) -> Any:
    return verify_and_parse(make_channel(), signed_request(event))


# --- inbound: every recorded callback, normalized or ignored

MEDIA = "https://dl-media.viber.com"
PICTURE_URL = (
    f"{MEDIA}/1/share/2/long/vibes/icon/image/0x0/95e0/"
    "5688fdffdaa81f6e1cf40cfe3bcfe3acc3fc7e07b75d1c3fc8a8d46e7bd9a3e.jpg"
)
VIDEO_URL = f"{MEDIA}/5/media/2/short/any/sig/video/0x0/8a1f/unboxing.mp4"
FILE_URL = f"{MEDIA}/5/media/2/short/any/sig/file/0x0/6d1c/booking.pdf"

EXPECTED_CONTENT: dict[str, Content] = {
    "text": TextContent(text="Hi, I need help with my booking"),
    "unicode": TextContent(text="Здравствуйте! Где мой заказ? 📦 ç’est urgent"),
    "url": TextContent(text="https://booking.example.com/orders/8812"),
    "picture": ImageContent(
        file=FileRef(file_id=PICTURE_URL, url=PICTURE_URL, name="error.jpg", size_bytes=184211),
        caption="Screenshot of the error",
    ),
    "video": VideoContent(
        file=FileRef(file_id=VIDEO_URL, url=VIDEO_URL, size_bytes=3145728, duration_s=12)
    ),
    "file": FileContent(
        file=FileRef(file_id=FILE_URL, url=FILE_URL, name="booking.pdf", size_bytes=48211)
    ),
    "sticker": StickerContent(
        file=FileRef(file_id="40133", url="https://viber-sticker.example-cdn.com/40133.png")
    ),
    "location": LocationContent(latitude=51.50135, longitude=-0.14189),
    "contact": ContactContent(phone="+447700900123", first_name="Holly Gennero"),
}

EXPECTED_EVENTS = {
    # name: (kind, customer, our message ids, reason)
    "delivered": ("delivered", "01234567890A=", ("4912661846655238145",), None),
    "seen": ("read", "01234567890A=", ("4912661846655238145",), None),
    "failed": ("failed", "01234567890A=", ("4912661846655238145",), "failure description"),
    "subscribed": ("subscribed", "u2NYcWleYQgJQkgYdDhfzg==", (), None),
    "unsubscribed": ("unsubscribed", "u2NYcWleYQgJQkgYdDhfzg==", (), None),
}

EXPECTED_IGNORED = {
    "webhook": "webhook",
    "conversation_started": "conversation_started",
    "client_status": "client_status",
    "rich_media": "unsupported_content:rich_media",
}

RECORDED = sorted(path.stem for path in RECORDED_EVENTS.glob("*.json"))


def test_every_recorded_callback_has_an_expectation() -> None:
    assert sorted([*EXPECTED_CONTENT, *EXPECTED_EVENTS, *EXPECTED_IGNORED]) == RECORDED


@pytest.mark.parametrize("name", sorted(EXPECTED_EVENTS))
def test_recorded_status_callback_is_a_channel_event_and_no_message(name: str) -> None:
    event = recorded_event(name)
    parsed = parse(event)
    assert (parsed.messages, parsed.ignored) == ((), ())
    (channel_event,) = parsed.events
    kind, customer, ids, reason = EXPECTED_EVENTS[name]
    assert (channel_event.kind, channel_event.dialog_key, channel_event.customer_id) == (
        kind,
        customer,
        customer,
    )
    assert (channel_event.channel_message_ids, channel_event.reason) == (ids, reason)
    assert channel_event.channel_event_id == f"{event['message_token']}:{kind}"
    assert channel_event.id == inbound_event_id("viber-1", channel_event.channel_event_id)
    assert channel_event.occurred_at == event["timestamp"] / 1000
    # 64-bit tokens travel as strings: a JavaScript portal would round a number > 2**53.
    assert channel_event.raw["message_token"] == str(event["message_token"])
    assert b"4912661846655238145," not in channel_event.model_dump_json().encode()


def test_a_status_callback_without_a_user_is_refused() -> None:
    event = {k: v for k, v in recorded_event("failed").items() if k != "user_id"}
    with pytest.raises(ValidationFailedError, match="user_id"):
        parse(event)


@pytest.mark.parametrize("name", sorted(EXPECTED_CONTENT))
def test_recorded_message_normalizes_to_its_content(name: str) -> None:
    event = recorded_event(name)
    parsed = parse(event)
    assert parsed.ignored == ()
    (message,) = parsed.messages
    token = str(event["message_token"])
    assert message.content == EXPECTED_CONTENT[name]
    assert (message.channel_message_id, message.channel_event_id) == (token, token)
    assert message.id == inbound_event_id("viber-1", token)
    assert message.order_key == order_key(event["timestamp"], event["message_token"])
    assert message.sent_at == event["timestamp"] / 1000
    assert message.raw == {**event, "message_token": token}
    assert parsed.reply == WebhookReply()


@pytest.mark.parametrize("name", sorted(EXPECTED_IGNORED))
def test_recorded_callback_is_ignored_with_a_200(name: str) -> None:
    parsed = parse(recorded_event(name))
    assert parsed.messages == ()
    assert parsed.ignored == (EXPECTED_IGNORED[name],)
    assert (parsed.reply.status, parsed.reply.body) == (200, b"")


def test_text_message_is_normalized_field_by_field() -> None:
    (message,) = parse(recorded_event("text")).messages
    assert message.route == ROUTE
    assert message.action == "new"
    assert message.dialog_key == USER
    assert message.channel_message_id == "5169273451608157073"
    assert message.sent_at == 1524508607.514
    assert message.received_at == FIXED_NOW_S
    assert (message.edited_at, message.reply_to_channel_message_id) == (None, None)
    assert message.customer == Customer(channel_user_id=USER, name="John McClane", language="en")
    assert message.extras == {
        "avatar_url": (
            "https://media-direct.cdn.viber.com/download_photo?dlid=PSF1BfvQJ9A1&fltp=jpg&imsz=0000"
        ),
        "country": "GB",
        "api_version": "10",
        "tracking_data": "conv-8812",
    }


def test_picture_keeps_its_thumbnail_and_silence_in_extras() -> None:
    event = {**recorded_event("picture"), "silent": True}
    (message,) = parse(event).messages
    thumbnail = f"{MEDIA}/1/share/2/long/vibes/icon/image/0x0/95e0/thumb.jpg"
    assert message.extras["thumbnail_url"] == thumbnail
    assert message.extras["silent"] == "true"


def test_unknown_fields_events_and_types_are_tolerated() -> None:
    event = recorded_event("text")
    event["message"]["future_field"] = [1]
    event["future_top_level"] = {"a": 1}
    assert parse(event).messages[0].content == EXPECTED_CONTENT["text"]
    assert parse({"event": "message_reaction", "timestamp": 1}).ignored == (
        "unsupported_update:message_reaction",
    )
    empty_text = recorded_event("text")
    empty_text["message"]["text"] = ""
    assert parse(empty_text).ignored == ("unsupported_content:text",)


# --- message_token: a 64-bit integer kept exact


def test_token_beyond_double_precision_is_kept_exactly() -> None:
    body = recorded_event("text")
    raw = orjson.dumps(body).replace(b"5169273451608157073", b"9223372036854775807")
    (message,) = parse(raw).messages
    assert message.channel_message_id == "9223372036854775807"
    assert float(message.channel_message_id) == 2**63  # what a double would have made of it
    assert message.raw["message_token"] == "9223372036854775807"


@given(token=st.integers(min_value=0, max_value=2**64 - 1))
def test_every_64_bit_token_round_trips_exactly(token: int) -> None:
    event = {**recorded_event("text"), "message_token": token}
    (message,) = parse(event).messages
    assert message.channel_event_id == str(token)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (b"4.987381189870374e18", "message_token: Input should be a valid integer"),
        (b'"5169273451608157073"', "message_token: Input should be a valid integer"),
        (b"18446744073709551616", "message_token: Input should be a valid integer"),
    ],
)
def test_token_that_is_not_an_exact_integer_is_refused(token: bytes, error: str) -> None:
    raw = orjson.dumps(recorded_event("text")).replace(b"5169273451608157073", token)
    with pytest.raises(ValidationFailedError, match=error):
        parse(raw)


@given(
    earlier_ms=st.integers(min_value=0, max_value=2**45),
    gap_ms=st.integers(min_value=1, max_value=10**6),
    first=st.integers(min_value=0, max_value=2**64 - 1),
    second=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_order_key_follows_the_timestamp_whatever_the_tokens(
    earlier_ms: int, gap_ms: int, first: int, second: int
) -> None:
    assert order_key(earlier_ms, first) < order_key(earlier_ms + gap_ms, second)
    assert order_key(earlier_ms + gap_ms, second) < 2**63  # fits the store's int64


def test_order_key_breaks_a_millisecond_tie_by_token() -> None:
    assert order_key(1524508607514, 5169273451608157073) != order_key(
        1524508607514, 5169273451608157074
    )


# --- inbound refusals


def test_right_signature_in_the_header_passes() -> None:
    make_channel().verify(signed_request(recorded_event("text")))


def test_signature_in_the_sig_query_parameter_passes_when_the_header_is_absent() -> None:
    raw = orjson.dumps(recorded_event("text"))
    make_channel().verify(signed_request(raw, query_sig=signature(TOKEN, raw)))


def test_header_is_preferred_over_the_query_parameter() -> None:
    raw = orjson.dumps(recorded_event("text"))
    request = signed_request(raw, header="0" * 64, query_sig=signature(TOKEN, raw))
    with pytest.raises(AuthError, match="does not match the body"):
        make_channel().verify(request)


def test_missing_signature_is_refused() -> None:
    request = signed_request(recorded_event("text"), header="x")
    request = RawRequest(request.method, request.path, {}, {}, request.body)
    with pytest.raises(AuthError, match="missing X-Viber-Content-Signature header and sig"):
        make_channel().verify(request)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "0" * 64,
        signature(TOKEN, b"{}"),
        signature("other-token", orjson.dumps(recorded_event("text"))),
        signature(TOKEN, orjson.dumps(recorded_event("text"))).upper(),
        "sha256=" + signature(TOKEN, orjson.dumps(recorded_event("text"))),
    ],
)
def test_wrong_signature_is_refused(presented: str) -> None:
    request = signed_request(recorded_event("text"), header=presented)
    with pytest.raises(AuthError, match="X-Viber-Content-Signature does not match the body"):
        make_channel().verify(request)


def test_signature_covers_the_raw_bytes_not_the_json() -> None:
    # The recorded file as it is: indented, with raw UTF-8; re-encoding would change it.
    raw = (RECORDED_EVENTS / "unicode.json").read_bytes()
    make_channel().verify(signed_request(raw, header=signature(TOKEN, raw)))
    reencoded = orjson.dumps(orjson.loads(raw))
    with pytest.raises(AuthError):
        make_channel().verify(signed_request(reencoded, header=signature(TOKEN, raw)))


@given(body=st.binary(max_size=200), flip=st.integers(min_value=0, max_value=199))
def test_any_changed_byte_breaks_the_signature(body: bytes, flip: int) -> None:
    channel = make_channel()
    channel.verify(signed_request(body))
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        with pytest.raises(AuthError):
            channel.verify(signed_request(changed, header=signature(TOKEN, body)))


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="malformed JSON: "):
        parse(b'{"event": "message",')


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "callback: expected a JSON object, got list"),
        ({"timestamp": 1}, r"callback\.event: Field required"),
        ({"event": "message", "timestamp": 1, "message_token": 1}, r"callback\.sender: Field"),
        (
            {**recorded_event("text"), "timestamp": "1524508607514"},
            r"callback\.timestamp: Input should be a valid integer",
        ),
        (
            {
                **recorded_event("location"),
                "message": {"type": "location", "location": {"lat": 91, "lon": 0}},
            },
            r"message\.location\.latitude: Input should be less than or equal to 90",
        ),
    ],
)
def test_json_that_is_not_a_callback_fails_validation(body: Any, error: str) -> None:
    with pytest.raises(ValidationFailedError, match=error):
        parse(orjson.dumps(body))


def test_connector_without_auth_token_refuses_to_build() -> None:
    with pytest.raises(ConfigError, match="auth_token\n  Field required"):
        build_channel(ROUTE, {"sender_name": "Acme"})


def test_registry_builds_a_viber_channel() -> None:
    assert isinstance(build_channel(ROUTE, {"auth_token": TOKEN}), ViberChannel)


@pytest.mark.parametrize("name", ["", "x" * 29])
def test_sender_name_outside_vibers_limits_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="sender_name"):
        ViberCredentials(auth_token=TOKEN, sender_name=name)


def test_credentials_hide_the_token_from_repr() -> None:
    assert TOKEN not in repr(make_channel().credentials)


# --- the stand-in's helpers, end to end through a served channel


async def test_post_event_reaches_a_channel_the_way_viber_posts(
    session: aiohttp.ClientSession, channel_webhook: tuple[StartWebhook, list[Any]]
) -> None:
    start, parses = channel_webhook
    url = await start(make_channel())
    assert await post_event(session, url, TOKEN, recorded_event("picture")) == (200, "")
    by_query = await post_event(session, url, TOKEN, recorded_event("file"), sign_in="query")
    assert by_query == (200, "")
    assert (await post_event(session, url, "wrong-token", recorded_event("text"))).status == 401
    assert [parsed.messages[0].channel_event_id for parsed in parses] == [
        "5169273840172412217",
        "5169274052817361033",
    ]


async def test_set_webhook_checks_the_url_with_a_signed_callback(
    session: aiohttp.ClientSession,
    viber_api: ViberApiStandIn,
    channel_webhook: tuple[StartWebhook, list[Any]],
) -> None:
    start, parses = channel_webhook
    url = await start(make_channel())
    headers = {"X-Viber-Auth-Token": TOKEN}
    async with session.post(
        f"{viber_api.base_url}/pa/set_webhook", json={"url": url}, headers=headers
    ) as response:
        answer = await response.json()
    assert (answer["status"], answer["status_message"]) == (0, "ok")
    assert viber_api.webhook_checks == [(200, "")]
    assert parses[0].ignored == ("webhook",)
    assert (await viber_api.deliver(recorded_event("sticker"))).status == 200
    assert isinstance(parses[1].messages[0].content, StickerContent)


async def test_set_webhook_fails_when_the_check_is_refused(
    session: aiohttp.ClientSession,
    viber_api: ViberApiStandIn,
    channel_webhook: tuple[StartWebhook, list[Any]],
) -> None:
    start, _ = channel_webhook
    url = await start(make_channel())
    viber_api.auth_token = "another-bot-token"  # signs the check with a key the channel refuses
    headers = {"X-Viber-Auth-Token": "another-bot-token"}
    async with session.post(
        f"{viber_api.base_url}/pa/set_webhook", json={"url": url}, headers=headers
    ) as response:
        answer = await response.json()
    assert answer["status"] == 1
    assert "HttpResponse[401]" in answer["status_message"]
    assert viber_api.webhook == {}


# --- outbound: the exact requests Viber receives


async def send(
    api: ViberApiStandIn, session: aiohttp.ClientSession, request: ReplyRequest, **extra: Any
) -> tuple[str, ...]:
    receipt = await make_channel(api.base_url, **extra).send(
        session, TARGET, request, reply_id=REPLY_ID
    )
    return receipt.channel_message_ids


HELLO = ReplyRequest(content=OutboundText(text="hello"))
ENVELOPE = {"receiver": USER, "min_api_version": 1, "sender": {"name": "Support"}}
FIRST_TOKEN = 5_169_280_000_000_000_000


async def test_text_is_one_send_message(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(content=OutboundText(text="Your booking is confirmed"))
    assert await send(viber_api, session, request) == (str(FIRST_TOKEN),)
    (call,) = viber_api.calls
    assert (call.path, call.content_type, call.token) == (
        "/pa/send_message",
        "application/json",
        TOKEN,
    )
    assert call.body == {**ENVELOPE, "type": "text", "text": "Your booking is confirmed"}


async def test_buttons_go_as_a_keyboard_on_the_last_message(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    keyboard = Keyboard.one_row(
        (Button(label="Yes", payload="ol:consent:yes"), Button(label="No", payload="ol:consent:no"))
    )
    request = ReplyRequest(content=OutboundText(text="May we?"), keyboard=keyboard)
    await send(viber_api, session, request)
    (call,) = viber_api.calls
    button = {"Rows": 1, "ActionType": "reply"}
    assert call.body == {
        **ENVELOPE,
        "type": "text",
        "text": "May we?",
        "keyboard": {
            "Type": "keyboard",
            "DefaultHeight": False,
            "Buttons": [
                {**button, "Columns": 3, "ActionBody": "Yes", "Text": "Yes"},
                {**button, "Columns": 3, "ActionBody": "No", "Text": "No"},
            ],
        },
    }


async def test_sender_name_comes_from_the_credentials(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    await send(
        viber_api, session, ReplyRequest(content=OutboundText(text="hi")), sender_name="Acme"
    )
    assert viber_api.calls[0].body["sender"] == {"name": "Acme"}


async def test_long_text_is_split_at_7000_units_and_reply_to_is_not_sent(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    text = "a" * 6000 + "\n\n" + "\U0001f4e6" * 1000  # the emoji count 2 units each
    request = ReplyRequest(content=OutboundText(text=text), reply_to_channel_message_id="51692")
    ids = await send(viber_api, session, request)
    assert len(ids) == 2 and ids[0] != ids[1]
    first, second = viber_api.calls
    assert first.body == {**ENVELOPE, "type": "text", "text": "a" * 6000}
    assert second.body == {**ENVELOPE, "type": "text", "text": "\U0001f4e6" * 1000}
    assert all(utf16_units(call.body["text"]) <= 7000 for call in viber_api.calls)


async def test_image_with_caption_is_one_picture(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    image = OutboundImage(url="https://cdn.example.com/map.png", caption="The pick-up point")
    await send(viber_api, session, ReplyRequest(content=image))
    (call,) = viber_api.calls
    assert call.body == {
        **ENVELOPE,
        "type": "picture",
        "media": "https://cdn.example.com/map.png",
        "text": "The pick-up point",
    }


async def test_image_without_caption_has_the_empty_text_viber_requires(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    await send(viber_api, session, ReplyRequest(content=OutboundImage(url="https://x.test/a.png")))
    assert viber_api.calls[0].body["text"] == ""


async def test_caption_past_768_units_follows_as_text(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    caption = "\U0001f4c4" * 385  # 770 UTF-16 units, 385 code points
    image = OutboundImage(url="https://cdn.example.com/map.png", caption=caption)
    assert len(await send(viber_api, session, ReplyRequest(content=image))) == 2
    picture, text = viber_api.calls
    assert picture.body["text"] == ""
    assert text.body == {**ENVELOPE, "type": "text", "text": caption}


async def test_file_goes_out_as_text_with_its_url(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    content = OutboundFile(
        url="https://cdn.example.com/invoice.pdf", name="invoice.pdf", caption="Your invoice"
    )
    await send(viber_api, session, ReplyRequest(content=content))
    (call,) = viber_api.calls
    text = "Your invoice\nhttps://cdn.example.com/invoice.pdf"
    assert call.body == {**ENVELOPE, "type": "text", "text": text}


async def test_blank_text_is_refused_before_any_call(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    for text in ("  ", "\n" * 8000):
        with pytest.raises(PermanentSendError, match="nothing but whitespace"):
            await send(viber_api, session, ReplyRequest(content=OutboundText(text=text)))
    assert viber_api.calls == []


async def test_answer_token_beyond_double_precision_is_kept_exactly(
    session: aiohttp.ClientSession,
) -> None:
    async with ViberApiStandIn(first_message_token=2**63 + 1) as api:
        assert await send(api, session, HELLO) == ("9223372036854775809",)


# --- outbound errors


async def test_too_many_requests_is_retryable(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    viber_api.fail_next(12, "Too many requests")
    with pytest.raises(RetryableSendError, match="send_message: status 12: Too many requests"):
        await send(viber_api, session, HELLO)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (5, "receiverNotRegistered"),
        (6, "notSubscribed"),
        (7, "publicAccountBlocked"),
        (10, "noWebhook"),
        (11, "receiverNoSuitableDevice"),
        (21, "notSupportedCountry"),
        (24, "noBalance"),
    ],
)
async def test_refusals_are_permanent_and_say_why(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession, status: int, message: str
) -> None:
    viber_api.fail_next(status, message)
    with pytest.raises(PermanentSendError, match=f"send_message: status {status}: {message}"):
        await send(viber_api, session, HELLO)


async def test_wrong_token_is_permanent_and_never_quoted(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    viber_api.auth_token = "another-bot-token"
    with pytest.raises(PermanentSendError, match="status 2: invalidAuthToken") as caught:
        await send(viber_api, session, HELLO)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(502, RetryableSendError), (429, RetryableSendError), (404, PermanentSendError)],
)
async def test_non_json_answer_is_retryable_only_for_server_errors_and_throttling(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession, status: int, error: type[Exception]
) -> None:
    viber_api.break_next(status)
    with pytest.raises(error, match=f"HTTP {status} with a non-JSON body"):
        await send(viber_api, session, HELLO)


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (503, b'{"status": 0}', RetryableSendError, "HTTP 503"),
        (400, b'{"status_message": "bad"}', PermanentSendError, "HTTP 400: bad"),
        (200, b'{"status": 0, "status_message": "ok"}', PermanentSendError, "without a message"),
        (200, b'{"status": 0, "message_token": "51"}', PermanentSendError, "without a message"),
        (200, b'{"status_message": "ok"}', PermanentSendError, "status None: ok"),
    ],
)
def test_answers_map_to_the_error_the_caller_can_act_on(
    status: int, body: bytes, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_response(status, body)


async def test_connection_refused_is_retryable(
    session: aiohttp.ClientSession, closed_port_url: str
) -> None:
    channel = make_channel(closed_port_url)
    with pytest.raises(RetryableSendError, match="send_message: ClientConnectorError"):
        await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)


async def test_timeout_is_retryable(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    viber_api.fail_next(12, "never seen", delay_s=5)
    with pytest.raises(RetryableSendError, match=r"send_message: .*Timeout"):
        await send(viber_api, session, HELLO, request_timeout_s=0.2)


# --- split messages that fail half-way

THREE_PARTS = ReplyRequest(content=OutboundText(text="\n\n".join(["x" * 6000] * 3)))


async def test_retry_after_a_failed_part_resumes_where_it_stopped(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(viber_api.base_url)
    viber_api.fail_next(12, "Too many requests", after_calls=1)
    with pytest.raises(RetryableSendError, match="part 2 of 3 failed after 1 sent"):
        await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    receipt = await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert len(set(receipt.channel_message_ids)) == 3
    assert len(viber_api.calls) == 4  # part 2 twice (refused, then sent), parts 1 and 3 once


async def test_permanent_failure_of_a_later_part_says_what_went_out(
    viber_api: ViberApiStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(viber_api.base_url)
    viber_api.fail_next(6, "notSubscribed", after_calls=2)
    with pytest.raises(PermanentSendError, match=r"part 3 of 3 failed after 2 sent: .*status 6"):
        await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert len(viber_api.calls) == 3 + 3  # nothing remembered: a new send starts over


@pytest.mark.parametrize(("timestamp", "kept"), [(2**53 - 1, True), (2**53, False)])
def test_a_timestamp_beyond_the_order_keys_range_is_ignored_with_a_200(
    timestamp: int, kept: bool
) -> None:
    """The order key shifts it by 10 bits; Viber resends anything not answered 200."""
    parsed = parse({**recorded_event("text"), "timestamp": timestamp})
    if kept:
        assert len(parsed.messages) == 1 and parsed.messages[0].order_key < 2**63
    else:
        assert parsed.messages == () and parsed.ignored == ("out_of_range:timestamp",)
