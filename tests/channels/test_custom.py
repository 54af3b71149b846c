from __future__ import annotations

from email.utils import formatdate
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import ValidationError

from channels.base import RawRequest
from channels.custom import CustomChannel, CustomCredentials
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
    Customer,
    DialogTarget,
    FileRef,
    ImageContent,
    InboundMessage,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    TextContent,
)
from tests.channels.conftest import CUSTOM_SECRET, FIXED_NOW_S, StartWebhook, route_for
from tests.standins.custom_receiver import CustomReceiverStandIn, post_messages, signed_headers

ROUTE = route_for("custom")
TARGET = DialogTarget(dialog_id="d7", route=ROUTE, dialog_key="chat-9", customer_id="cust-3")
REPLY_ID = "rpl_1"
HELLO = ReplyRequest(content=OutboundText(text="Hello from Acme"), client_id="portal-msg-1")


def make_channel(reply_url: str | None = None, **extra: Any) -> CustomChannel:
    credentials = CustomCredentials(signing_secret=CUSTOM_SECRET, reply_url=reply_url, **extra)
    return CustomChannel(ROUTE, credentials, now=lambda: FIXED_NOW_S)


def signed_request(
    body: bytes, *, secret: str = CUSTOM_SECRET, timestamp_s: float = FIXED_NOW_S
) -> RawRequest:
    headers = signed_headers(secret, body, timestamp_s=int(timestamp_s), webhook_id="msg_test1")
    return RawRequest(
        method="POST", path="/hooks/custom/custom-1", headers=headers, query={}, body=body
    )


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "ev-1",
        "chat_id": "chat-9",
        "sequence": 0,
        "sent_at": 1776049000.5,
        "customer": {"id": "cust-3"},
        "content": {"kind": "text", "text": "Where is my order?"},
    }
    return {**base, **fields}


def parse(*messages: dict[str, Any]) -> tuple[InboundMessage, ...]:
    body = orjson.dumps({"messages": list(messages)})
    return make_channel().parse(signed_request(body), received_at=FIXED_NOW_S).messages


# --- signatures


BODY = orjson.dumps({"messages": [message()]})


def test_a_fresh_signature_passes() -> None:
    make_channel().verify(signed_request(BODY))


def test_a_signature_by_another_secret_is_refused() -> None:
    with pytest.raises(AuthError, match="no valid v1 signature"):
        make_channel().verify(signed_request(BODY, secret="another-secret-0123456789"))


def test_a_body_changed_after_signing_is_refused() -> None:
    request = signed_request(BODY)
    tampered = RawRequest(request.method, request.path, request.headers, {}, BODY + b" ")
    with pytest.raises(AuthError, match="no valid v1 signature"):
        make_channel().verify(tampered)


@pytest.mark.parametrize("skew_s", [-301, 301])
def test_a_stale_or_future_timestamp_is_refused(skew_s: int) -> None:
    with pytest.raises(AuthError, match="outside the 300 s tolerance"):
        make_channel().verify(signed_request(BODY, timestamp_s=FIXED_NOW_S + skew_s))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_refused(missing: str) -> None:
    request = signed_request(BODY)
    headers = {name: value for name, value in request.headers.items() if name != missing}
    with pytest.raises(AuthError, match="missing webhook-id, webhook-timestamp or"):
        make_channel().verify(RawRequest("POST", request.path, headers, {}, BODY))


def test_a_short_signing_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        CustomCredentials(signing_secret="short")


# --- parsing


def test_a_message_is_normalized_field_by_field() -> None:
    raw = message(
        message_id="m-1",
        reply_to="m-0",
        customer={"id": "cust-3", "name": "Lena Kraus", "phone": "+4915112345678"},
    )
    (inbound,) = parse(raw)
    assert inbound == InboundMessage(
        id=inbound_event_id("custom-1", "ev-1"),
        route=ROUTE,
        action="new",
        dialog_key="chat-9",
        customer=Customer(channel_user_id="cust-3", name="Lena Kraus", phone="+4915112345678"),
        content=TextContent(text="Where is my order?"),
        reply_to_channel_message_id="m-0",
        channel_message_id="m-1",
        channel_event_id="ev-1",
        order_key=0,
        sent_at=1776049000.5,
        received_at=FIXED_NOW_S,
        raw=raw,
    )


def test_defaults_and_other_actions() -> None:
    image = {"kind": "image", "file": {"file_id": "https://cdn.example.com/a.png"}}
    new, edit, delete, typing = parse(
        message(content=image),
        message(event_id="ev-2", sequence=1, action="edit", message_id="ev-1"),
        message(event_id="ev-3", sequence=2, action="delete", message_id="ev-1", content=None),
        message(event_id="ev-4", sequence=3, delivery="best_effort"),
    )
    assert new.content == ImageContent(file=FileRef(file_id="https://cdn.example.com/a.png"))
    assert (new.channel_message_id, new.delivery, new.edited_at) == ("ev-1", "guaranteed", None)
    assert (edit.action, edit.channel_message_id, edit.edited_at) == ("edit", "ev-1", 1776049000.5)
    assert (delete.action, delete.content) == ("delete", None)
    assert typing.delivery == "best_effort"
    assert [m.order_key for m in (new, edit, delete, typing)] == [0, 1, 2, 3]


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="malformed JSON: "):
        make_channel().parse(signed_request(b'{"messages": ['), received_at=FIXED_NOW_S)


def without(field: str) -> dict[str, Any]:
    fields = message()
    del fields[field]
    return fields


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"messages": [without("chat_id")]}, r"^messages\.0\.chat_id: Field required$"),
        (
            {"messages": [message(), without("event_id")]},
            r"^messages\.1\.event_id: Field required$",
        ),
        ({"messages": [message(colour="red")]}, r"messages\.0\.colour: Extra inputs are not"),
        ({"messages": [message(sequence=-1)]}, r"messages\.0\.sequence: Input should be greater"),
        ({"messages": [message(action="react")]}, r"messages\.0\.action: Input should be 'new'"),
        ({"messages": [message(content=None)]}, r"messages\.0: Value error, content is required"),
        (
            {"messages": [message(content={"kind": "gif", "url": "x"})]},
            r"messages\.0\.content: Input tag 'gif' found using 'kind' does not match",
        ),
        (
            {"messages": [message(content={"kind": "text"})]},
            r"messages\.0\.content\.text\.text: Field required",
        ),
        ({"messages": []}, r"^messages: List should have at least 1 item"),
        ({"messages": [message()] * 1001}, r"^messages: List should have at most 1000 items"),
        ({"batch": []}, r"messages: Field required; batch: Extra inputs are not permitted"),
        ([message()], r"^body: Input should be a valid dictionary"),
    ],
)
def test_schema_errors_name_the_field(body: Any, error: str) -> None:
    with pytest.raises(ValidationFailedError, match=error):
        make_channel().parse(signed_request(orjson.dumps(body)), received_at=FIXED_NOW_S)


def test_many_errors_are_summarized() -> None:
    broken: dict[str, Any] = {"messages": [{}]}
    with pytest.raises(ValidationFailedError, match=r"; messages\.0\.sequence: .*\(and 2 more\)$"):
        make_channel().parse(signed_request(orjson.dumps(broken)), received_at=FIXED_NOW_S)


@pytest.mark.parametrize(
    ("stored", "counts"),
    [
        ([True, False, True], {"accepted": 2, "duplicates": 1}),
        ([False, False], {"accepted": 0, "duplicates": 2}),
        ([True], {"accepted": 1, "duplicates": 0}),
    ],
)
def test_acknowledge_counts_new_and_duplicate_messages(
    stored: list[bool], counts: dict[str, int]
) -> None:
    channel = make_channel()
    batch = [message(event_id=f"ev-{index}") for index in range(len(stored))]
    parsed = channel.parse(signed_request(orjson.dumps({"messages": batch})), FIXED_NOW_S)
    reply = channel.acknowledge(parsed, stored)
    assert (reply.status, reply.content_type) == (200, "application/json")
    assert orjson.loads(reply.body) == counts


async def test_post_messages_reaches_a_served_channel(
    session: aiohttp.ClientSession, channel_webhook: tuple[StartWebhook, list[Any]]
) -> None:
    start, parses = channel_webhook
    channel = CustomChannel(ROUTE, CustomCredentials(signing_secret=CUSTOM_SECRET))
    url = await start(channel)
    batch = [message(event_id=f"ev-{n}", sequence=n) for n in range(3)]
    assert (await post_messages(session, url, CUSTOM_SECRET, batch)).status == 200
    refused = await post_messages(session, url, "not-the-secret-0123456789", batch)
    assert refused == (401, "bad_signature: no valid v1 signature")
    assert [m.channel_event_id for m in parses[0].messages] == ["ev-0", "ev-1", "ev-2"]


# --- outbound


async def test_reply_is_posted_signed_with_the_dialog(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(
        content=OutboundImage(url="https://cdn.example.com/label.png", caption="Label"),
        reply_to_channel_message_id="m-1",
        client_id="portal-msg-2",
    )
    receipt = await make_channel(custom_receiver.url).send(
        session, TARGET, request, reply_id=REPLY_ID
    )
    assert receipt.channel_message_ids == ("reply-1",)
    (reply,) = custom_receiver.replies
    assert reply.timestamp_s == int(FIXED_NOW_S)
    assert reply.webhook_id.startswith("msg_")
    assert reply.body == {
        "reply_id": REPLY_ID,
        "connector_id": "custom-1",
        "dialog_id": "d7",
        "chat_id": "chat-9",
        "customer_id": "cust-3",
        "content": {
            "kind": "image",
            "url": "https://cdn.example.com/label.png",
            "caption": "Label",
        },
        "reply_to": "m-1",
        "client_id": "portal-msg-2",
    }


async def test_buttons_reach_the_receiver_as_numbered_options_in_the_text(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    keyboard = Keyboard.one_row(
        (
            Button(label="✅ Yes", payload="ol:consent:yes"),
            Button(label="❌ No", payload="ol:consent:no"),
        )
    )
    request = ReplyRequest(content=OutboundText(text="May we?"), keyboard=keyboard)
    await make_channel(custom_receiver.url).send(session, TARGET, request, reply_id=REPLY_ID)
    (reply,) = custom_receiver.replies
    assert reply.body["content"] == {
        "kind": "text",
        "text": "May we?\n\n1. ✅ Yes\n2. ❌ No",
        "markup": "bbcode",  # the receiver renders the portal's markup itself
    }


async def test_receipt_uses_the_receivers_ids_or_the_webhook_id(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(custom_receiver.url)
    custom_receiver.answer_next({"message_ids": ["a", "b"]})
    custom_receiver.answer_next(b"", status=204)
    first = await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)
    assert first.channel_message_ids == ("a", "b")
    receipt = await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)
    assert receipt.channel_message_ids == (custom_receiver.replies[1].webhook_id,)


async def test_every_attempt_of_a_reply_carries_its_reply_id_under_a_fresh_webhook_id(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(custom_receiver.url)
    custom_receiver.fail_next(503)
    with pytest.raises(RetryableSendError):
        await channel.send(session, TARGET, HELLO, reply_id="rpl_a")
    await channel.send(session, TARGET, HELLO, reply_id="rpl_a")
    await channel.send(session, TARGET, HELLO, reply_id="rpl_b")  # equal words, another reply
    first, retry, other = custom_receiver.attempts
    assert [a.body["reply_id"] for a in (first, retry, other)] == ["rpl_a", "rpl_a", "rpl_b"]
    assert len({first.webhook_id, retry.webhook_id, other.webhook_id}) == 3
    assert CustomChannel.idempotent_sends  # the receiver de-duplicates on reply_id


async def test_no_reply_url_refuses_replies(session: aiohttp.ClientSession) -> None:
    with pytest.raises(PermanentSendError, match="connector has no reply_url"):
        await make_channel().send(session, TARGET, HELLO, reply_id=REPLY_ID)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_s"),
    [(429, "7", 7.0), (503, formatdate(FIXED_NOW_S + 90, usegmt=True), 90.0), (500, None, None)],
)
async def test_overload_and_server_errors_are_retryable(
    custom_receiver: CustomReceiverStandIn,
    session: aiohttp.ClientSession,
    status: int,
    retry_after: str | None,
    expected_s: float | None,
) -> None:
    date = formatdate(FIXED_NOW_S, usegmt=True)  # the receiver's clock, as the channel's
    custom_receiver.fail_next(status, body="busy", retry_after=retry_after, date=date)
    with pytest.raises(RetryableSendError, match=f"reply_url answered {status}: busy") as caught:
        await make_channel(custom_receiver.url).send(session, TARGET, HELLO, reply_id=REPLY_ID)
    assert caught.value.retry_after_s == expected_s
    assert (len(custom_receiver.attempts), custom_receiver.replies) == (1, [])


async def test_client_error_is_permanent_with_the_start_of_the_body(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    custom_receiver.fail_next(400, body="unknown chat_id " + "x" * 300)
    with pytest.raises(PermanentSendError, match=r"answered 400: unknown chat_id x{184}$"):
        await make_channel(custom_receiver.url).send(session, TARGET, HELLO, reply_id=REPLY_ID)


async def test_receiver_refusing_the_signature_is_permanent(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    credentials = CustomCredentials(
        signing_secret="a-different-secret-0123", reply_url=custom_receiver.url
    )
    channel = CustomChannel(ROUTE, credentials, now=lambda: FIXED_NOW_S)
    with pytest.raises(PermanentSendError, match="answered 401: no valid v1 signature"):
        await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)
    assert custom_receiver.rejected == ["no valid v1 signature"]


async def test_redirect_is_not_followed(
    custom_receiver: CustomReceiverStandIn, session: aiohttp.ClientSession
) -> None:
    custom_receiver.answer_next(b"", status=307)
    with pytest.raises(PermanentSendError, match="answered 307"):
        await make_channel(custom_receiver.url).send(session, TARGET, HELLO, reply_id=REPLY_ID)


async def test_connection_refused_is_retryable(
    session: aiohttp.ClientSession, closed_port_url: str
) -> None:
    channel = make_channel(f"{closed_port_url}/replies")
    with pytest.raises(RetryableSendError, match="reply_url: ClientConnectorError"):
        await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)


def test_a_sequence_beyond_the_order_keys_range_is_refused_with_its_field() -> None:
    assert [m.order_key for m in parse(message(sequence=2**63 - 1))] == [2**63 - 1]
    with pytest.raises(
        ValidationFailedError, match=r"messages\.0\.sequence: .*9223372036854775807"
    ):
        parse(message(sequence=2**63))
