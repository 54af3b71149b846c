"""Instagram: direct messages and comments, every recorded notification, and replies against
the Graph stand-in."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.meta.instagram import InstagramChannel, InstagramCredentials
from engine.errors import PermanentSendError, RetryableSendError
from engine.models import (
    Content,
    Customer,
    DialogTarget,
    FileContent,
    FileRef,
    ImageContent,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    StickerContent,
    TextContent,
)
from tests.channels.conftest import route_for
from tests.channels.meta_kit import parse_with
from tests.standins.meta_api import (
    APP_ID,
    APP_SECRET,
    IG_ACCOUNT_ID,
    IG_COMMENTS_ACCOUNT_ID,
    IG_TOKEN,
    RECORDED,
    VERIFY_TOKEN,
    MetaGraphStandIn,
)

ROUTE = route_for("instagram")
IGSID = "6917324161655021"
OURS = "aWdfZAG1faXRlbToxOk91cnM"
LOOKASIDE = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id="
TOP = "17867301270523379"


def make_channel(
    graph_api_url: str = "https://graph.facebook.com/v21.0", **extra: Any
) -> InstagramChannel:
    fields: dict[str, Any] = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "app_id": APP_ID,
        "account_id": IG_ACCOUNT_ID,
        "access_token": IG_TOKEN,
        "graph_api_url": graph_api_url,
    }
    return InstagramChannel(ROUTE, InstagramCredentials.model_validate({**fields, **extra}))


def comments_channel(
    graph_api_url: str = "https://graph.facebook.com/v21.0", **extra: Any
) -> InstagramChannel:
    return make_channel(
        graph_api_url, account_id=IG_COMMENTS_ACCOUNT_ID, receive=("comments",), **extra
    )


def url_file(url: str) -> FileRef:
    return FileRef(file_id=url, url=url)


# direct messages: (event id, action, content)
EXPECTED_DIRECT: dict[str, list[tuple[str, str, Content | None]]] = {
    "ig_text": [
        (
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODQ0OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1OTQ4NDI5MzE5MjA2NTI0ODozMTc4NzQyMzI5NjA3NDE1MzA2NzA1NjM0NDM0Nzg0NTYzMgZDZD",
            "new",
            TextContent(text="Is this jacket available in M?"),
        )
    ],
    "ig_image": [
        (
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODQ0OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1OTQ4NDI5MzE5MjA2NTI0ODozMTc4NzQyMzI5NjA3NDE1MzA2NzA1NjM0NDM0Nzg0NTYzMgZDZE",
            "new",
            ImageContent(file=url_file(f"{LOOKASIDE}17942391188781434&signature=AbzH")),
        )
    ],
    "ig_like_heart": [
        (
            "aWdfZAG1faXRlbToxOkhlYXJ0",
            "new",
            StickerContent(file=FileRef(file_id="like_heart"), emoji="❤️"),
        )
    ],
    "ig_story_mention": [
        (
            "aWdfZAG1faXRlbToxOlN0b3J5",
            "new",
            FileContent(file=url_file(f"{LOOKASIDE}1794&signature=St0ry")),
        )
    ],
    "ig_story_reply": [("aWdfZAG1faXRlbToxOlJlcGx5", "new", TextContent(text="Где купить? 😍"))],
    "ig_share": [
        (
            "aWdfZAG1faXRlbToxOlNoYXJl",
            "new",
            FileContent(file=url_file(f"{LOOKASIDE}1796"), caption="Spring collection"),
        )
    ],
    "ig_deleted": [("aWdfZAG1faXRlbToxOkRlbA#deleted", "delete", None)],
    "ig_quick_reply": [("aWdfZAG1faXRlbToxOlFS", "new", TextContent(text="Да"))],
}
EXPECTED_DIRECT_IGNORED = {
    "ig_echo_ours": ("echo",),  # our app's echo, when Meta names the app
    "ig_unsupported": ("unsupported_content:unsupported",),
}
# (kind, message ids, reaction)
EXPECTED_DIRECT_EVENTS: dict[str, list[tuple[str, tuple[str, ...], str | None]]] = {
    "ig_reaction": [("reaction", (OURS,), "❤")],
    "ig_unreact": [("reaction", (OURS,), None)],
    "ig_read": [("read", (OURS,), None)],
    # A reply typed in the Instagram app: no app named (the engine drops those it sent).
    "ig_echo": [("sent_elsewhere", ("aWdfZAG1faXRlbToxOkVjaG8",), None)],
    "ig_echo_media": [("sent_elsewhere", ("aWdfZAG1faXRlbToxOk1lZGlh",), None)],
    "ig_standby": [("standby", ("aWdfZAG1faXRlbToxOlN0YW5kYnk",), None)],
}
# comments: (event id, dialog key, content)
EXPECTED_COMMENTS: dict[str, list[tuple[str, str, Content]]] = {
    "ig_comment": [(TOP, f"comment:{TOP}", TextContent(text="Price please 🙏"))],
    "ig_comment_reply": [
        ("17867301270529999", f"comment:{TOP}", TextContent(text="А размер M есть? 🙏"))
    ],
    "ig_ad_comment": [
        ("17867301270527777", "comment:17867301270527777", TextContent(text="Link?"))
    ],
    "ig_live_comment": [
        ("17867301270526666", "comment:17867301270526666", TextContent(text="Hello from the live"))
    ],
}
EXPECTED_COMMENTS_IGNORED = {"ig_own_comment": ("own_comment",), "ig_mention": ("field:mentions",)}
DIRECT = sorted({*EXPECTED_DIRECT, *EXPECTED_DIRECT_IGNORED, *EXPECTED_DIRECT_EVENTS})
COMMENTS = sorted({*EXPECTED_COMMENTS, *EXPECTED_COMMENTS_IGNORED})


def test_every_recorded_instagram_notification_has_an_expectation() -> None:
    assert {path.stem for path in RECORDED.glob("ig_*.json")} == {*DIRECT, *COMMENTS}


@pytest.mark.parametrize("name", DIRECT)
def test_recorded_direct_notification(name: str) -> None:
    parsed = parse_with(make_channel(), name)
    got = [(m.channel_event_id, m.action, m.content) for m in parsed.messages]
    assert got == EXPECTED_DIRECT.get(name, [])
    assert parsed.ignored == EXPECTED_DIRECT_IGNORED.get(name, ())
    events = [(e.kind, e.channel_message_ids, e.reaction) for e in parsed.events]
    assert events == EXPECTED_DIRECT_EVENTS.get(name, [])
    assert all(m.dialog_key == IGSID for m in parsed.messages)
    assert all(e.dialog_key == IGSID for e in parsed.events)


def test_an_instagram_app_echo_tells_the_operator_what_was_written() -> None:
    [text] = parse_with(make_channel(), "ig_echo").events
    assert text.extras == {"text": "Thanks!"} and text.customer_id == IGSID
    [media] = parse_with(make_channel(), "ig_echo_media").events
    assert media.extras == {"attachment_urls": f"{LOOKASIDE}1799&signature=Ab1"}
    # Without our app id configured, every echo is the operator's to see.
    [ours] = parse_with(make_channel(app_id=None), "ig_echo_ours").events
    assert (ours.kind, ours.extras["app_id"]) == ("sent_elsewhere", APP_ID)


@pytest.mark.parametrize("name", COMMENTS)
def test_recorded_comment_notification(name: str) -> None:
    parsed = parse_with(comments_channel(), name)
    got = [(m.channel_event_id, m.dialog_key, m.content) for m in parsed.messages]
    assert got == EXPECTED_COMMENTS.get(name, [])
    assert parsed.ignored == EXPECTED_COMMENTS_IGNORED.get(name, ())


def test_the_comment_captured_with_spaced_separators_verifies_and_reads() -> None:
    (message,) = parse_with(comments_channel(), "ig_comment").messages
    assert message.customer == Customer(
        channel_user_id="848067418322071", username="m_waqarsikandar"
    )
    assert message.extras == {"media_id": "18050310947722369", "media_product_type": "FEED"}
    assert message.sent_at == 1776339591


def test_story_reply_and_quick_reply_extras() -> None:
    (story,) = parse_with(make_channel(), "ig_story_reply").messages
    assert story.extras == {
        "reply_to_story_id": "17987645321",
        "reply_to_story_url": f"{LOOKASIDE}1795&signature=St",
    }
    (quick,) = parse_with(make_channel(), "ig_quick_reply").messages
    assert quick.extras == {"button_payload": "ol:consent:yes"}


def test_an_ad_comment_keeps_its_ad() -> None:
    (message,) = parse_with(comments_channel(), "ig_ad_comment").messages
    assert message.extras["ad_id"] == "23851234567890123"


# --- replies


async def test_direct_reply_goes_to_the_linked_page_or_the_account(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    target = DialogTarget(dialog_id="d", route=ROUTE, dialog_key=IGSID, customer_id="c")
    await make_channel(meta_graph.graph_api_url).send(
        session, target, ReplyRequest(content=OutboundText(text="Есть, M в наличии")), reply_id="r"
    )
    meta_graph.accounts.messenger["370873143344730"] = IG_TOKEN
    linked = make_channel(meta_graph.graph_api_url, page_id="370873143344730")
    await linked.send(
        session,
        target,
        ReplyRequest(content=OutboundImage(url="https://s.example/m.jpg")),
        reply_id="r2",
    )
    assert [(c.node, c.body["recipient"], c.body["messaging_type"]) for c in meta_graph.calls] == [
        (IG_ACCOUNT_ID, {"id": IGSID}, "RESPONSE"),
        ("370873143344730", {"id": IGSID}, "RESPONSE"),
    ]


async def test_a_long_direct_text_is_split_within_1000_bytes(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    target = DialogTarget(dialog_id="d", route=ROUTE, dialog_key=IGSID, customer_id="c")
    text = " ".join(f"ответ{i}" for i in range(200))  # ~2400 bytes
    receipt = await make_channel(meta_graph.graph_api_url).send(
        session, target, ReplyRequest(content=OutboundText(text=text)), reply_id="r"
    )
    parts = [body["message"]["text"] for body in meta_graph.sent()]
    assert len(receipt.channel_message_ids) == len(parts) == 3
    assert all(len(part.encode()) <= 1000 for part in parts)


async def test_comment_replies_public_private_and_throttled(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    target = DialogTarget(dialog_id="d", route=ROUTE, dialog_key=f"comment:{TOP}", customer_id="c")
    public = comments_channel(meta_graph.graph_api_url)
    picture = OutboundImage(url="https://s.example/size-chart.png", caption="Size chart")
    await public.send(session, target, ReplyRequest(content=picture), reply_id="r1")
    assert (meta_graph.calls[0].node, meta_graph.calls[0].edge) == (TOP, "replies")
    assert meta_graph.calls[0].body == {"message": "Size chart\nhttps://s.example/size-chart.png"}
    private = comments_channel(meta_graph.graph_api_url, comment_replies="private")
    meta_graph.throttle_next(613, regain_minutes=60)
    request = ReplyRequest(content=OutboundText(text="Написали вам в директ"))
    with pytest.raises(RetryableSendError) as caught:
        await private.send(session, target, request, reply_id="r2")
    assert caught.value.retry_after_s == 3600  # the 750-an-hour limit: kept and retried
    await private.send(session, target, request, reply_id="r2")
    assert meta_graph.calls[-1].node == IG_COMMENTS_ACCOUNT_ID
    assert meta_graph.sent()[-1]["recipient"] == {"comment_id": TOP}
    with pytest.raises(PermanentSendError, match="at most 1000 utf8 bytes"):
        await private.send(
            session, target, ReplyRequest(content=OutboundText(text="я" * 600)), reply_id="r3"
        )
