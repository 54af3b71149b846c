"""Facebook page comments (``feed``): every recorded change, and public and private replies
against the Graph stand-in."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.base import WebhookParse
from channels.meta.comments import comment_order_key
from channels.meta.facebook import FacebookChannel, FacebookCredentials
from engine.buttons.keyboard import Button, Keyboard
from engine.errors import PermanentSendError
from engine.models import (
    Content,
    Customer,
    DialogTarget,
    FileRef,
    ImageContent,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    TextContent,
)
from tests.channels.conftest import route_for
from tests.channels.meta_kit import parse_with, rows
from tests.standins.meta_api import (
    APP_SECRET,
    FEED_PAGE_ID,
    PAGE_TOKEN,
    RECORDED,
    VERIFY_TOKEN,
    MetaGraphStandIn,
    encode,
    recorded_json,
)

ROUTE = route_for("facebook")
POST = "370873143344730_690891113073877"
C1 = "690891113073877_759878495960329"
REPLY = "690891113073877_759878495961111"
PHOTO = "https://scontent.xx.fbcdn.net/v/t39.30808-6/photo.jpg"
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=f"comment:{C1}", customer_id="c")


def make_channel(
    graph_api_url: str = "https://graph.facebook.com/v21.0", **extra: Any
) -> FacebookChannel:
    fields: dict[str, Any] = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "page_id": FEED_PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "graph_api_url": graph_api_url,
        "receive": ("comments",),
    }
    return FacebookChannel(ROUTE, FacebookCredentials(**{**fields, **extra}))


def parse(name: str) -> WebhookParse:
    return parse_with(make_channel(), name)


# (event id, action, dialog key, content)
EXPECTED: dict[str, list[tuple[str, str, str, Content | None]]] = {
    "fb_feed_comment": [
        (C1, "new", f"comment:{C1}", TextContent(text="How much is shipping to Berlin?"))
    ],
    "fb_feed_reply": [(REPLY, "new", f"comment:{C1}", TextContent(text="Ответ: а в Москву? 🚚"))],
    "fb_feed_photo": [
        (
            "690891113073877_759878495963333",
            "new",
            "comment:690891113073877_759878495963333",
            ImageContent(file=FileRef(file_id=PHOTO, url=PHOTO), caption="This one"),
        )
    ],
    "fb_feed_remove": [(f"{C1}#removed", "delete", f"comment:{C1}", None)],
}
EXPECTED_IGNORED = {
    "fb_feed_own": ("own_comment",),
    "fb_feed_post_add": ("feed:status:add",),
    "fb_feed_reaction_post": ("feed:reaction:post",),  # a post is no comment thread
    "fb_feed_reaction_own": ("own_reaction",),
}
AUTHOR = "6780462125377510"
LIKED = "690891113073877_759878495962222"
# (kind, dialog key, customer, message ids, reaction, event id)
EXPECTED_EVENTS: dict[str, list[tuple[str, str, str, tuple[str, ...], str | None, str]]] = {
    "fb_feed_hide": [("hidden", f"comment:{C1}", AUTHOR, (C1,), None, f"{C1}:hide:1701413610")],
    "fb_feed_unhide": [
        ("unhidden", f"comment:{C1}", AUTHOR, (REPLY,), None, f"{REPLY}:unhide:1701413700")
    ],
    "fb_feed_reaction_comment": [
        (
            "reaction",
            f"comment:{C1}",
            AUTHOR,
            (LIKED,),
            "❤️",
            f"reaction:{AUTHOR}:{LIKED}:add:1701413790",
        )
    ],
    "fb_feed_reaction_remove": [
        (
            "reaction",
            f"comment:{C1}",
            AUTHOR,
            (C1,),
            None,
            f"reaction:{AUTHOR}:{C1}:remove:1701413890",
        )
    ],
}


def test_every_recorded_feed_change_has_an_expectation() -> None:
    names = {path.stem for path in RECORDED.glob("fb_feed_*.json")}
    assert names == set(EXPECTED) | set(EXPECTED_IGNORED) | set(EXPECTED_EVENTS) | {
        "fb_feed_edited"
    }


@pytest.mark.parametrize(
    "name", sorted(set(EXPECTED) | set(EXPECTED_IGNORED) | set(EXPECTED_EVENTS))
)
def test_recorded_feed_change(name: str) -> None:
    parsed = parse(name)
    got = [(m.channel_event_id, m.action, m.dialog_key, m.content) for m in parsed.messages]
    assert got == EXPECTED.get(name, [])
    assert parsed.ignored == EXPECTED_IGNORED.get(name, ())
    events = rows(
        parsed.events,
        "kind",
        "dialog_key",
        "customer_id",
        "channel_message_ids",
        "reaction",
        "channel_event_id",
    )
    assert events == EXPECTED_EVENTS.get(name, [])
    assert not any(event.opens_window for event in parsed.events)


def test_a_reaction_keeps_facebooks_name_and_a_redelivery_its_ids() -> None:
    [love] = parse("fb_feed_reaction_comment").events
    assert love.extras == {"reaction_name": "love"}
    assert parse("fb_feed_reaction_comment").events == (love,)
    odd = recorded_json("fb_feed_reaction_comment.json")
    odd["entry"][0]["changes"][0]["value"]["reaction_type"] = "thankful"
    [thankful] = parse_with(make_channel(), encode(odd)).events
    assert thankful.reaction == "thankful"  # a type without an emoji goes by its name


def test_new_comment_field_by_field() -> None:
    (message,) = parse("fb_feed_comment").messages
    assert message.customer == Customer(channel_user_id="6780462125377510", name="Changan Yang")
    assert (message.channel_message_id, message.reply_to_channel_message_id) == (C1, None)
    assert message.sent_at == 1701413571
    assert message.order_key == comment_order_key(1701413571, C1)
    assert message.extras == {
        "post_id": POST,
        "post_url": "https://www.facebook.com/acme/posts/pfbid04M7S4SRFSYCAyfYN6cSNR4RYMLnQ",
    }
    (reply,) = parse("fb_feed_reply").messages
    assert reply.reply_to_channel_message_id == C1


def test_an_edit_is_keyed_by_its_text_so_a_redelivery_is_one_and_a_new_edit_another() -> None:
    (edit,) = parse("fb_feed_edited").messages
    again = parse("fb_feed_edited").messages[0]
    body = recorded_json("fb_feed_edited.json")
    body["entry"][0]["changes"][0]["value"]["message"] = "Munich, or Hamburg?"
    other = parse_with(make_channel(), encode(body)).messages[0]
    assert (edit.action, edit.channel_message_id) == ("edit", C1)
    assert edit.id == again.id != other.id
    assert edit.content == TextContent(text="How much is shipping to Munich?")


def test_a_messages_only_connector_ignores_comments_and_vice_versa() -> None:
    messages_only = make_channel(receive=("messages",))
    assert parse_with(messages_only, "fb_feed_comment").ignored == ("comments",)
    assert parse_with(make_channel(), "fb_text").messages == ()


# --- replies


async def test_public_reply_to_the_thread_or_to_the_comment_named(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url)
    receipt = await channel.send(
        session, TARGET, ReplyRequest(content=OutboundText(text="Бесплатно!")), reply_id="r1"
    )
    await channel.send(
        session,
        TARGET,
        ReplyRequest(
            content=OutboundImage(url="https://shop.example.com/map.png", caption="Zones"),
            reply_to_channel_message_id=REPLY,
        ),
        reply_id="r2",
    )
    assert receipt.channel_message_ids == ("690891113073877_1",)
    calls = [(c.node, c.edge, c.token, c.body) for c in meta_graph.calls]
    assert calls == [
        (C1, "comments", PAGE_TOKEN, {"message": "Бесплатно!"}),
        (
            REPLY,
            "comments",
            PAGE_TOKEN,
            {"attachment_url": "https://shop.example.com/map.png", "message": "Zones"},
        ),
    ]


async def test_private_reply_is_one_per_comment(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph.graph_api_url, comment_replies="private")
    request = ReplyRequest(content=OutboundText(text="Wrote you in Messenger"))
    await channel.send(session, TARGET, request, reply_id="r1")
    assert meta_graph.calls[0].node == FEED_PAGE_ID
    assert meta_graph.sent()[0] == {
        "recipient": {"comment_id": C1},
        "message": {"text": "Wrote you in Messenger"},
    }
    with pytest.raises(PermanentSendError, match=r"already has its one private reply.*10900"):
        await channel.send(session, TARGET, request, reply_id="r2")
    with pytest.raises(PermanentSendError, match="one message of at most 2000"):
        await channel.send(
            session, TARGET, ReplyRequest(content=OutboundText(text="x " * 1500)), reply_id="r3"
        )


async def test_buttons_in_a_comment_reply_become_numbered_options(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    keyboard = Keyboard.one_row(
        (Button(label="Да", payload="ol:consent:yes"), Button(label="Нет", payload="ol:consent:no"))
    )
    request = ReplyRequest(content=OutboundText(text="Согласны?"), keyboard=keyboard)
    await make_channel(meta_graph.graph_api_url).send(session, TARGET, request, reply_id="r1")
    message = meta_graph.calls[0].body["message"]
    assert message.startswith("Согласны?") and "1. Да" in message and "2. Нет" in message
