from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from channels.base import RawRequest, WebhookReply
from channels.registry import build_channel
from channels.text_split import utf16_units
from channels.vk import VkChannel, VkCredentials, check_response, random_id
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
)
from tests.channels.conftest import (
    FIXED_NOW_S,
    StartWebhook,
    route_for,
    verify_and_parse,
    webhook_post,
)
from tests.standins.vk_api import (
    RECORDED_EVENTS,
    ScriptedAnswer,
    VkApiStandIn,
    post_event,
    recorded_event,
    vk_error,
)

SECRET = "Qw3rTy8sEcr3t"
GROUP_ID = 193668024
CONFIRMATION_CODE = "693d0ba9"
PEER = "228970688"
ROUTE = route_for("vk")
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=PEER, customer_id=PEER)
REPLY_ID = "rpl_1"
OK = WebhookReply(status=200, body=b"ok", content_type="text/plain")


def make_channel(api_base_url: str = "https://api.vk.com", **extra: Any) -> VkChannel:
    credentials = VkCredentials(
        access_token=extra.pop("access_token", "vk1.a.stand-in-community-token"),
        secret=SECRET,
        confirmation_code=CONFIRMATION_CODE,
        group_id=GROUP_ID,
        api_base_url=api_base_url,
        **extra,
    )
    return VkChannel(ROUTE, credentials)


def webhook_request(body: bytes | dict[str, Any]) -> RawRequest:
    return webhook_post("vk", body)


def parse(event: dict[str, Any]) -> Any:
    return verify_and_parse(make_channel(), webhook_request(event))


# --- inbound: every recorded event, normalized or ignored

PHOTO_URL = "https://sun9-3.userapi.com/c857236/v857236595/124a59/nJXapHnUbeo.jpg"
DOC_URL = (
    "https://vk.com/doc228970688_446688146?hash=46c657e80431c00b41"
    "&dl=GIYDONRZGA3TGNY:1586060010:78bbda10d1&api=1&no_preview=1"
)

EXPECTED_CONTENT: dict[str, Content] = {
    "text": TextContent(text="Hello! When will my order arrive?"),
    "message_edit": TextContent(text="Hello! When will order #77 arrive?"),
    "reply": TextContent(text="Yes, the blue one"),
    "legacy_message_new": TextContent(text="Sent through an old server version"),
    "photo": ImageContent(
        file=FileRef(
            file_id="photo555644284_457239342_23a2cbe266f7bbf17c",
            url=PHOTO_URL,
            width_px=945,
            height_px=2048,
        ),
        caption="Here is the label from the parcel",
    ),
    "doc": FileContent(
        file=FileRef(
            file_id="doc228970688_446688146_df36717f54f744ef6d",
            url=DOC_URL,
            name="contract.pdf",
            size_bytes=4967272,
        )
    ),
    "sticker": StickerContent(
        file=FileRef(
            file_id="9014", url="https://vk.com/sticker/1-9014-512", width_px=512, height_px=512
        )
    ),
    "audio_message": AudioContent(
        file=FileRef(
            file_id="audio_message228970688_456239018_3e9f2d0e6b84d6b1c5",
            url="https://psv4.userapi.com/c205324/u228970688/audiomsg/d2/8f0a3c1e2b.ogg",
            mime_type="audio/ogg",
            duration_s=4,
        ),
        is_voice=True,
    ),
    "geo": LocationContent(latitude=59.93863, longitude=30.31413, title="Nevsky Prospekt, 28"),
    "multiple_attachments": ImageContent(
        file=FileRef(
            file_id="photo228970688_457239350_77aa88bb99cc",
            url="https://sun9-5.userapi.com/c857236/x.jpg",
            width_px=604,
            height_px=453,
        ),
        caption="Video, photo and the invoice",
    ),
}

EXPECTED_IGNORED = {
    "confirmation": "confirmation",
    "message_reply": "own_message",
    "own_edit": "own_message",
    "community_sender": "community_sender",
    "unsupported_attachment": "unsupported_content:wall",
    "group_join": "unsupported_update:group_join",
}

EXPECTED_EVENTS = {
    # name: (kind, dialog, customer, message ids, extras)
    "message_read": ("read", "228970688", "228970688", ("148",), {}),
    "message_typing_state": ("typing", "228970688", "228970688", (), {}),
    "message_allow": ("subscribed", "228970688", "228970688", (), {"key": "promo"}),
}

RECORDED = sorted(path.stem for path in RECORDED_EVENTS.glob("*.json"))


def test_every_recorded_event_has_an_expectation() -> None:
    assert sorted([*EXPECTED_CONTENT, *EXPECTED_IGNORED, *EXPECTED_EVENTS]) == RECORDED


@pytest.mark.parametrize("name", sorted(EXPECTED_EVENTS))
def test_recorded_event_is_a_channel_event_and_no_message(name: str) -> None:
    event = recorded_event(name)
    parsed = parse(event)
    assert (parsed.messages, parsed.ignored, parsed.reply) == ((), (), OK)
    (channel_event,) = parsed.events
    kind, dialog, customer, ids, extras = EXPECTED_EVENTS[name]
    assert (channel_event.kind, channel_event.dialog_key, channel_event.customer_id) == (
        kind,
        dialog,
        customer,
    )
    assert (channel_event.channel_message_ids, channel_event.extras) == (ids, extras)
    assert channel_event.channel_event_id == event["event_id"]
    assert channel_event.id == inbound_event_id("vk-1", event["event_id"])
    assert "secret" not in channel_event.raw


def test_message_deny_is_an_unsubscription() -> None:
    event = {**recorded_event("message_allow"), "type": "message_deny", "object": {"user_id": 5}}
    (channel_event,) = parse(event).events
    assert (channel_event.kind, channel_event.customer_id) == ("unsubscribed", "5")


OLD_FORMAT_MESSAGE = {
    "type": "message_new",
    "group_id": GROUP_ID,
    "event_id": "a1b2c3",
    "object": {
        "id": 43,
        "date": 1492522323,
        "out": 0,
        "user_id": 228970688,
        "read_state": 0,
        "title": "",
        "body": "Старый формат 5.80 👋",
    },
    "secret": SECRET,
}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (OLD_FORMAT_MESSAGE, "old_api_version:message_new"),
        ({**OLD_FORMAT_MESSAGE, "type": "message_edit"}, "old_api_version:message_edit"),
        (
            {"type": "message_new", "group_id": GROUP_ID, "object": {"message": {}}},
            "no_event_id:message_new",
        ),
        (
            {
                "type": "message_new",
                "group_id": GROUP_ID,
                "event_id": "e",
                "object": {"message": {}},
            },
            "unreadable:message_new",
        ),
        (
            {"type": "message_edit", "group_id": GROUP_ID, "event_id": "e", "object": "text"},
            "unreadable:message_edit",
        ),
        (
            {"type": "message_read", "group_id": GROUP_ID, "event_id": "e", "object": {}},
            "unreadable:message_read",
        ),
    ],
    ids=["old-new", "old-edit", "no-event-id", "empty-message", "not-an-object", "bad-read"],
)
def test_an_event_the_engine_cannot_read_is_answered_ok_and_ignored(
    body: dict[str, Any], reason: str
) -> None:
    """VK resends anything not answered "ok", forever: never a 422 for one of its events."""
    parsed = parse({**body, "secret": SECRET})
    assert (parsed.messages, parsed.events, parsed.ignored, parsed.reply) == ((), (), (reason,), OK)


@pytest.mark.parametrize("name", sorted(EXPECTED_CONTENT))
def test_recorded_event_normalizes_to_its_content(name: str) -> None:
    event = recorded_event(name)
    parsed = parse(event)
    assert parsed.ignored == ()
    (message,) = parsed.messages
    assert message.content == EXPECTED_CONTENT[name]
    assert message.channel_event_id == event["event_id"]
    assert message.id == inbound_event_id("vk-1", event["event_id"])
    assert message.order_key == int(message.channel_message_id)
    assert message.raw == {key: value for key, value in event.items() if key != "secret"}
    assert parsed.reply == OK


@pytest.mark.parametrize("name", sorted(EXPECTED_IGNORED))
def test_recorded_event_is_ignored_with_its_reason(name: str) -> None:
    parsed = parse(recorded_event(name))
    assert parsed.messages == ()
    assert parsed.ignored == (EXPECTED_IGNORED[name],)


def test_confirmation_answers_the_code_and_nothing_else() -> None:
    parsed = parse(recorded_event("confirmation"))
    assert parsed.reply == WebhookReply(status=200, body=b"693d0ba9", content_type="text/plain")


@pytest.mark.parametrize("name", sorted(n for n in RECORDED if n != "confirmation"))
def test_every_other_event_answers_exactly_ok(name: str) -> None:
    channel = make_channel()
    parsed = channel.parse(webhook_request(recorded_event(name)), received_at=FIXED_NOW_S)
    reply = channel.acknowledge(parsed, [False] * len(parsed.messages))
    assert reply == OK
    assert reply.body == b"ok"  # no BOM, no newline, no quotes


def test_text_message_is_normalized_field_by_field() -> None:
    (message,) = parse(recorded_event("text")).messages
    assert message.route == ROUTE
    assert message.action == "new"
    assert message.dialog_key == PEER
    assert message.channel_message_id == "127"
    assert message.order_key == 127
    assert message.sent_at == 1586054794
    assert message.received_at == FIXED_NOW_S
    assert message.edited_at is None
    assert message.reply_to_channel_message_id is None
    assert message.delivery == "guaranteed"
    assert message.customer == Customer(
        channel_user_id=PEER, profile_url="https://vk.com/id228970688"
    )
    assert message.extras == {"peer_type": "user", "lang_id": "0"}
    assert "secret" not in message.raw


def test_edit_keeps_the_conversation_message_id_and_dates() -> None:
    (edit,) = parse(recorded_event("message_edit")).messages
    (original,) = parse(recorded_event("text")).messages
    assert (edit.action, edit.channel_message_id, edit.order_key) == ("edit", "127", 127)
    assert (edit.sent_at, edit.edited_at) == (1586054794, 1586054850)
    assert edit.id != original.id
    assert edit.extras == {"peer_type": "user"}  # an edit carries no client_info


def test_group_chat_photo_is_keyed_by_peer_and_conversation_message_id() -> None:
    (message,) = parse(recorded_event("photo")).messages
    assert (message.dialog_key, message.channel_message_id) == ("2000000279", "241661")
    assert message.customer.channel_user_id == "555644284"
    assert message.extras == {"peer_type": "chat", "lang_id": "3"}


def test_reply_names_the_quoted_conversation_message_id() -> None:
    (message,) = parse(recorded_event("reply")).messages
    assert message.reply_to_channel_message_id == "130"


def test_attachments_beyond_the_first_supported_go_to_extras() -> None:
    (message,) = parse(recorded_event("multiple_attachments")).messages
    assert message.extras == {
        "peer_type": "user",
        "lang_id": "0",
        "attachment.0": "video",
        "attachment.2": "doc",
        "attachment.2.url": "https://vk.com/doc228970688_446688150?hash=1a2b3c&api=1",
    }


@pytest.mark.parametrize(
    ("name", "extras"),
    [
        ("doc", {"file_ext": "pdf"}),
        ("sticker", {"sticker_product_id": "279"}),
        (
            "audio_message",
            {
                "voice_mp3_url": (
                    "https://psv4.userapi.com/c205324/u228970688/audiomsg/d2/8f0a3c1e2b.mp3"
                ),
                "transcript": "Where is my parcel",
            },
        ),
    ],
)
def test_attachment_details_without_a_universal_field_go_to_extras(
    name: str, extras: dict[str, str]
) -> None:
    (message,) = parse(recorded_event(name)).messages
    assert message.extras == {"peer_type": "user", "lang_id": "0", **extras}


def test_text_beside_a_location_is_kept_in_extras() -> None:
    event = recorded_event("geo")
    event["object"]["message"]["text"] = "I am here"
    (message,) = parse(event).messages
    assert isinstance(message.content, LocationContent)
    assert message.extras["text"] == "I am here"


def test_keyboard_payload_is_kept_in_extras() -> None:
    event = recorded_event("text")
    event["object"]["message"]["payload"] = '{"button":"yes"}'
    assert parse(event).messages[0].extras["payload"] == '{"button":"yes"}'


def test_unknown_fields_and_event_types_are_tolerated() -> None:
    event = recorded_event("text")
    event["object"]["message"]["future_field"] = {"anything": [1, 2]}
    event["future_top_level"] = True
    assert parse(event).messages[0].content == EXPECTED_CONTENT["text"]
    future = {**recorded_event("group_join"), "type": "message_future_event"}
    assert parse(future).ignored == ("unsupported_update:message_future_event",)


def test_message_without_content_is_ignored_as_empty() -> None:
    event = recorded_event("text")
    event["object"]["message"]["text"] = ""
    assert parse(event).ignored == ("unsupported_content:empty",)


# --- inbound refusals


def test_right_secret_and_group_pass() -> None:
    make_channel().verify(webhook_request(recorded_event("text")))


def test_missing_secret_is_refused() -> None:
    event = recorded_event("text")
    del event["secret"]
    with pytest.raises(AuthError, match="body carries no 'secret' field"):
        make_channel().verify(webhook_request(event))


@pytest.mark.parametrize("presented", ["wrong", SECRET + "x", SECRET[:-1], "", "s\u00e9cret", 42])
def test_wrong_secret_is_refused(presented: Any) -> None:
    event = {**recorded_event("text"), "secret": presented}
    with pytest.raises(AuthError, match="secret"):
        make_channel().verify(webhook_request(event))


@pytest.mark.parametrize("group_id", [1, -GROUP_ID, str(GROUP_ID), None, True])
def test_event_for_another_community_is_refused(group_id: Any) -> None:
    event = {**recorded_event("text"), "group_id": group_id}
    with pytest.raises(AuthError, match=r"group_id .* is not this connector's community"):
        make_channel().verify(webhook_request(event))


def test_confirmation_for_another_community_is_refused() -> None:
    event = {**recorded_event("confirmation"), "group_id": 1}
    with pytest.raises(AuthError, match="group_id 1"):
        make_channel().verify(webhook_request(event))


@given(presented=st.text(max_size=40))
def test_only_the_configured_secret_passes(presented: str) -> None:
    assume(presented != SECRET)
    event = {"type": "message_new", "group_id": GROUP_ID, "secret": presented}
    with pytest.raises(AuthError):
        make_channel().verify(webhook_request(event))


def test_malformed_json_is_a_bad_request_already_in_verify() -> None:
    # VK's proof is inside the JSON, so verify has to decode it first.
    with pytest.raises(BadRequestError, match="malformed JSON: "):
        make_channel().verify(webhook_request(b'{"type": "message_new",'))


def test_json_that_is_not_an_object_carries_no_secret() -> None:
    with pytest.raises(AuthError, match="no 'secret'"):
        make_channel().verify(webhook_request(b"[1, 2]"))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "callback: expected a JSON object, got list"),
        ({"group_id": GROUP_ID}, r"callback\.type: Field required"),
    ],
)
def test_json_that_is_not_a_callback_fails_validation(body: Any, error: str) -> None:
    with pytest.raises(ValidationFailedError, match=error):
        make_channel().parse(webhook_request(orjson.dumps(body)), received_at=FIXED_NOW_S)


def test_connector_without_secret_refuses_to_build() -> None:
    credentials = {"access_token": "t", "confirmation_code": "abc", "group_id": GROUP_ID}
    with pytest.raises(ConfigError, match="secret\n  Field required"):
        build_channel(ROUTE, credentials)


def test_registry_builds_a_vk_channel() -> None:
    credentials = {
        "access_token": "t",
        "secret": SECRET,
        "confirmation_code": CONFIRMATION_CODE,
        "group_id": GROUP_ID,
    }
    assert isinstance(build_channel(ROUTE, credentials), VkChannel)


@pytest.mark.parametrize("code", ["", "693d0ba9\n", "69 3d"])
def test_confirmation_code_with_whitespace_is_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="confirmation_code"):
        VkCredentials(access_token="t", secret=SECRET, confirmation_code=code, group_id=1)


def test_credentials_hide_token_and_secret_from_repr() -> None:
    text = repr(make_channel().credentials)
    assert "stand-in-community-token" not in text and SECRET not in text


# --- the stand-in's event helper, end to end through a served channel


async def test_post_event_reaches_a_channel_the_way_vk_posts(
    session: aiohttp.ClientSession, channel_webhook: tuple[StartWebhook, list[Any]]
) -> None:
    start, parses = channel_webhook
    url = await start(make_channel())
    posted = await post_event(session, url, recorded_event("confirmation"))
    assert (posted.status, posted.text) == (200, CONFIRMATION_CODE)
    assert (await post_event(session, url, recorded_event("photo"))).text == "ok"
    retried = await post_event(session, url, recorded_event("photo"), retry_counter=1)
    assert (retried.status, retried.text) == (200, "ok")
    wrong = {**recorded_event("photo"), "secret": "guess"}
    assert (await post_event(session, url, wrong)).status == 401
    assert [parsed.ignored for parsed in parses] == [("confirmation",), (), ()]
    assert parses[1].messages[0].id == parses[2].messages[0].id  # the retry dedups


# --- outbound: the exact requests VK receives


async def send(
    api: VkApiStandIn,
    session: aiohttp.ClientSession,
    request: ReplyRequest,
    *,
    reply_id: str = REPLY_ID,
    **extra: Any,
) -> tuple[str, ...]:
    channel = make_channel(api.base_url, **extra)
    receipt = await channel.send(session, TARGET, request, reply_id=reply_id)
    return receipt.channel_message_ids


def common(part: int = 0, reply_id: str = REPLY_ID) -> dict[str, str]:
    return {"v": "5.199", "peer_id": PEER, "random_id": str(random_id(reply_id, part))}


async def test_text_is_one_messages_send_form(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(content=OutboundText(text="Shipped!"))
    assert await send(vk_api, session, request) == ("2000",)
    (call,) = vk_api.calls
    assert (call.method, call.content_type) == (
        "messages.send",
        "application/x-www-form-urlencoded",
    )
    assert call.token == vk_api.access_token  # in Authorization, not in the form
    assert call.params == {**common(), "message": "Shipped!"}


async def test_long_text_is_split_and_quotes_on_the_first_part_only(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    text = "a" * 8000 + "\n\n" + "b" * 2000
    request = ReplyRequest(content=OutboundText(text=text), reply_to_channel_message_id="127")
    assert await send(vk_api, session, request) == ("2000", "2001")
    first, second = vk_api.calls
    forward = '{"peer_id":228970688,"conversation_message_ids":[127],"is_reply":true}'
    assert first.params == {**common(0), "message": "a" * 8000, "forward": forward}
    assert second.params == {**common(1), "message": "b" * 2000}
    assert first.params["random_id"] != second.params["random_id"]


async def test_buttons_go_as_a_keyboard_on_the_last_part(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    keyboard = Keyboard.one_row(
        (Button(label="👍", payload="ol:rate:like"), Button(label="👎", payload="ol:rate:dislike"))
    )
    text = "a" * 8995 + "\n\n" + "Rate us"
    request = ReplyRequest(content=OutboundText(text=text), keyboard=keyboard)
    await send(vk_api, session, request)
    first, second = vk_api.calls
    assert first.params == {**common(0), "message": "a" * 8995}
    assert second.params == {
        **common(1),
        "message": "Rate us",
        "keyboard": '{"inline":true,"buttons":[['
        '{"action":{"type":"text","label":"👍","payload":"{\\"ol\\":\\"ol:rate:like\\"}"}},'
        '{"action":{"type":"text","label":"👎","payload":"{\\"ol\\":\\"ol:rate:dislike\\"}"}}'
        "]]}",
    }


async def test_text_is_split_in_utf16_units(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    text = "\U0001f4e6 ok " * 2000  # 10000 code points, 12000 units
    request = ReplyRequest(content=OutboundText(text=text))
    assert len(await send(vk_api, session, request)) == 2
    assert all(utf16_units(call.params["message"]) <= 9000 for call in vk_api.calls)


async def test_image_url_goes_out_as_text_with_its_caption(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    content = OutboundImage(url="https://cdn.example.com/label.png", caption="Your label")
    request = ReplyRequest(content=content)
    await send(vk_api, session, request)
    (call,) = vk_api.calls
    message = "Your label\nhttps://cdn.example.com/label.png"
    assert call.params == {**common(), "message": message}


async def test_file_url_without_caption_goes_out_as_the_url(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    content = OutboundFile(url="https://cdn.example.com/invoice.pdf", name="invoice.pdf")
    request = ReplyRequest(content=content)
    await send(vk_api, session, request)
    assert vk_api.calls[0].params == {**common(), "message": content.url}


async def test_vk_attachment_id_goes_out_as_an_attachment(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    photo = ReplyRequest(content=OutboundImage(url="photo-193668024_457239017", caption="Here"))
    doc = ReplyRequest(content=OutboundFile(url="doc228970688_446688146_df36717f54f744ef6d"))
    await send(vk_api, session, photo, reply_id="rpl_photo")
    await send(vk_api, session, doc, reply_id="rpl_doc")
    first, second = vk_api.calls
    assert first.params == {
        **common(reply_id="rpl_photo"),
        "message": "Here",
        "attachment": "photo-193668024_457239017",
    }
    assert second.params == {
        **common(reply_id="rpl_doc"),
        "attachment": "doc228970688_446688146_df36717f54f744ef6d",
    }


async def test_blank_text_is_refused_before_any_call(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    for text in (" \n ", " " * 10000):
        with pytest.raises(PermanentSendError, match="nothing but whitespace"):
            await send(vk_api, session, ReplyRequest(content=OutboundText(text=text)))
    assert vk_api.calls == []


async def test_reply_to_a_non_numeric_id_is_refused(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(content=OutboundText(text="hi"), reply_to_channel_message_id="abc")
    with pytest.raises(PermanentSendError, match="'abc' is not a VK conversation_message_id"):
        await send(vk_api, session, request)


async def test_non_numeric_dialog_key_is_refused(session: aiohttp.ClientSession) -> None:
    target = TARGET.model_copy(update={"dialog_key": "durov"})
    with pytest.raises(PermanentSendError, match="'durov' is not a VK peer_id"):
        request = ReplyRequest(content=OutboundText(text="hi"))
        await make_channel().send(session, target, request, reply_id=REPLY_ID)


async def test_a_resent_reply_is_delivered_once_and_an_equal_reply_again(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    request = ReplyRequest(content=OutboundText(text="Shipped!"))
    assert await send(vk_api, session, request, reply_id="rpl_a") == ("2000",)
    assert await send(vk_api, session, request, reply_id="rpl_a") == ("2000",)  # a resend
    # the same words as another reply are another message: the key is the reply, not the text
    assert await send(vk_api, session, request, reply_id="rpl_b") == ("2001",)
    assert (len(vk_api.calls), len(vk_api.delivered)) == (3, 2)
    assert vk_api.calls[0].params == vk_api.calls[1].params != vk_api.calls[2].params


@given(reply_id=st.text(max_size=40), part=st.integers(min_value=0, max_value=20))
def test_random_id_is_a_positive_int32_fixed_by_reply_and_part(reply_id: str, part: int) -> None:
    value = random_id(reply_id, part)
    assert 1 <= value <= 2**31 - 1
    assert value != random_id(reply_id, part + 1)
    assert value != random_id(reply_id + "x", part)


def test_random_id_is_the_same_in_every_process() -> None:
    # pinned: a restarted engine must repeat the ids (no per-process hash seed)
    assert (random_id("rpl_1", 0), random_id("rpl_1", 1)) == (480865492, 1113506621)


# --- outbound errors

HELLO = ReplyRequest(content=OutboundText(text="hello"))


@pytest.mark.parametrize(
    ("code", "message", "retry_after_s"),
    [
        (6, "Too many requests per second", None),  # VK names no wait: the back-off
        (9, "Flood control", None),
        (10, "Internal server error", None),
        (1, "Unknown error occurred", None),
    ],
)
async def test_rate_and_server_errors_are_retryable(
    vk_api: VkApiStandIn,
    session: aiohttp.ClientSession,
    code: int,
    message: str,
    retry_after_s: float | None,
) -> None:
    vk_api.fail_next(code, message)
    with pytest.raises(RetryableSendError, match=f"messages.send: error {code}: {message}") as e:
        await send(vk_api, session, HELLO)
    assert e.value.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (901, "Can't send messages for users without permission"),
        (902, "Can't send messages to this user due to their privacy settings"),
        (900, "Can't send messages for users from blacklist"),
        (7, "Permission to perform this action is denied"),
        (15, "Access denied"),
        (917, "You don't have access to this chat"),
        (945, "Chat was disabled"),
        (914, "Message is too long"),
        (14, "Captcha needed"),
    ],
)
async def test_refusals_are_permanent_and_say_why(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession, code: int, message: str
) -> None:
    vk_api.fail_next(code, message)
    with pytest.raises(PermanentSendError, match=f"messages.send: error {code}: {message}"):
        await send(vk_api, session, HELLO)


async def test_wrong_token_is_permanent_and_never_quoted(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentSendError, match="error 5: User authorization failed") as caught:
        await send(vk_api, session, HELLO, access_token="vk1.a.revoked")
    assert "revoked" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"), [(502, RetryableSendError), (404, PermanentSendError)]
)
async def test_non_json_answer_is_retryable_only_for_server_errors(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession, status: int, error: type[Exception]
) -> None:
    vk_api.break_next(status)
    with pytest.raises(error, match=f"HTTP {status} with a non-JSON body"):
        await send(vk_api, session, HELLO)


async def test_json_server_error_is_retryable(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    vk_api.script(ScriptedAnswer(503, {"message": "maintenance"}))
    with pytest.raises(RetryableSendError, match="HTTP 503"):
        await send(vk_api, session, HELLO)


@pytest.mark.parametrize(
    "body", [b"{}", b'{"response": "2000"}', b'{"response": true}', b'{"error": "x"}']
)
def test_answer_without_a_message_id_is_permanent(body: bytes) -> None:
    with pytest.raises(PermanentSendError, match="without a message id"):
        check_response(200, body)


def test_error_object_decides_even_over_a_response() -> None:
    body = orjson.dumps({**vk_error(6, "Too many requests per second"), "response": 1})
    with pytest.raises(RetryableSendError):
        check_response(200, body)


async def test_connection_refused_is_retryable(
    session: aiohttp.ClientSession, closed_port_url: str
) -> None:
    channel = make_channel(closed_port_url)
    with pytest.raises(RetryableSendError, match=r"messages\.send: ClientConnectorError"):
        await channel.send(session, TARGET, HELLO, reply_id=REPLY_ID)


async def test_timeout_is_retryable(vk_api: VkApiStandIn, session: aiohttp.ClientSession) -> None:
    vk_api.fail_next(10, "never seen", delay_s=5)
    with pytest.raises(RetryableSendError, match=r"messages\.send: .*Timeout"):
        await send(vk_api, session, HELLO, request_timeout_s=0.2)


# --- split messages that fail half-way

THREE_PARTS = ReplyRequest(content=OutboundText(text="\n\n".join(["x" * 8000] * 3)))


async def test_retry_after_a_failed_part_resends_under_the_same_random_ids(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(vk_api.base_url)
    vk_api.fail_next(6, "Too many requests per second", after_calls=1)
    with pytest.raises(RetryableSendError, match="part 2 of 3 failed after 1 sent") as caught:
        await channel.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert caught.value.retry_after_s is None  # VK names no wait
    retry = make_channel(vk_api.base_url)
    receipt = await retry.send(session, TARGET, THREE_PARTS, reply_id=REPLY_ID)
    assert receipt.channel_message_ids == ("2000", "2001", "2002")
    assert len(vk_api.calls) == 5  # part 1 twice (VK drops the resend), part 2 twice, part 3
    assert [call.params["random_id"] for call in vk_api.delivered] == [
        str(random_id(REPLY_ID, part)) for part in range(3)
    ]


async def test_permanent_failure_of_a_later_part_says_what_went_out(
    vk_api: VkApiStandIn, session: aiohttp.ClientSession
) -> None:
    vk_api.fail_next(901, "Can't send messages for users without permission", after_calls=2)
    with pytest.raises(PermanentSendError, match=r"part 3 of 3 failed after 2 sent: .*901"):
        await send(vk_api, session, THREE_PARTS)


def test_a_conversation_message_id_the_store_cannot_keep_is_ignored_with_ok() -> None:
    """VK resends anything not answered "ok": a bound refused with an error would loop."""
    event = recorded_event("text")
    event["object"]["message"]["conversation_message_id"] = 2**63
    parsed = parse(event)
    assert parsed.messages == ()
    assert parsed.ignored == ("out_of_range:conversation_message_id",)
    assert parsed.reply.body == b"ok"
