"""Meta's per-dialog addressing: what each recorded message says a reply needs, and replies
going where the dialog's address says (docs/channels/contract.md, "Addressing")."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.base import Channel
from channels.meta.comments import comment_dialog_key
from engine.models import DialogTarget, OutboundText, ReplyRequest
from tests.channels import test_facebook, test_instagram, test_whatsapp
from tests.channels.conftest import route_for
from tests.channels.meta_kit import parse_with
from tests.standins.meta_api import (
    FEED_PAGE_ID,
    IG_ACCOUNT_ID,
    IG_COMMENTS_ACCOUNT_ID,
    PAGE_ID,
    PHONE_NUMBER_ID,
    MetaGraphStandIn,
)

PSID = "7689966077685933"
FB_THREAD = "690891113073877_759878495960329"
IG_THREAD = "17867301270523379"


def facebook(graph: str = "https://graph.facebook.com/v21.0", **extra: Any) -> Channel:
    return test_facebook.make_channel(graph, **extra)


def feed(graph: str = "https://graph.facebook.com/v21.0", **extra: Any) -> Channel:
    return facebook(graph, page_id=FEED_PAGE_ID, receive=("comments",), **extra)


def instagram(graph: str = "https://graph.facebook.com/v21.0", **extra: Any) -> Channel:
    return test_instagram.make_channel(graph, **extra)


def ig_comments(graph: str = "https://graph.facebook.com/v21.0", **extra: Any) -> Channel:
    return test_instagram.comments_channel(graph, **extra)


def whatsapp(graph: str = "https://graph.facebook.com/v21.0") -> Channel:
    return test_whatsapp.make_channel(graph)


@pytest.mark.parametrize(
    ("make", "recorded", "address"),
    [
        (facebook, "fb_text", {"account_id": PAGE_ID, "recipient_id": PSID}),
        (facebook, "fb_postback", {"account_id": PAGE_ID, "recipient_id": PSID}),
        (facebook, "fb_cyrillic_emoji", {"account_id": PAGE_ID, "recipient_id": PSID}),
        (
            feed,
            "fb_feed_comment",
            {"account_id": FEED_PAGE_ID, "thread_id": FB_THREAD, "comment_id": FB_THREAD},
        ),
        (
            feed,
            "fb_feed_reply",
            {
                "account_id": FEED_PAGE_ID,
                "thread_id": FB_THREAD,
                "comment_id": "690891113073877_759878495961111",
            },
        ),
        (instagram, "ig_text", {"account_id": IG_ACCOUNT_ID, "recipient_id": "6917324161655021"}),
        (
            ig_comments,
            "ig_comment",
            {"account_id": IG_COMMENTS_ACCOUNT_ID, "thread_id": IG_THREAD, "comment_id": IG_THREAD},
        ),
        (
            ig_comments,
            "ig_comment_reply",
            {
                "account_id": IG_COMMENTS_ACCOUNT_ID,
                "thread_id": IG_THREAD,
                "comment_id": "17867301270529999",
            },
        ),
        (whatsapp, "wa_text", {"phone_number_id": PHONE_NUMBER_ID, "to": "16505551234"}),
        (whatsapp, "wa_cyrillic_emoji", {"phone_number_id": PHONE_NUMBER_ID, "to": "16505551234"}),
        (
            whatsapp,
            "wa_username",
            {"phone_number_id": PHONE_NUMBER_ID, "recipient": "US.13491208655302741918"},
        ),
    ],
)
def test_each_message_says_what_a_reply_needs(
    make: Any, recorded: str, address: dict[str, str]
) -> None:
    messages = parse_with(make(), recorded).messages
    assert messages and {tuple(sorted(m.address.items())) for m in messages} == {
        tuple(sorted(address.items()))
    }


def target(channel: str, key: str, address: dict[str, str]) -> DialogTarget:
    route = route_for(channel)
    return DialogTarget(
        dialog_id="d1", route=route, dialog_key=key, customer_id="c", address=address
    )


TEXT = ReplyRequest(content=OutboundText(text="Ответ 👍"))


async def test_a_direct_reply_goes_to_the_addressed_recipient_or_the_key(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = facebook(meta_graph.graph_api_url)
    await channel.send(session, target("facebook", PSID, {}), TEXT, reply_id="r1")
    addressed = {"account_id": PAGE_ID, "recipient_id": "7689966077600002"}
    await channel.send(session, target("facebook", PSID, addressed), TEXT, reply_id="r2")
    old, new = meta_graph.sent()
    assert old["recipient"] == {"id": PSID}  # a dialog stored before addresses: its key
    assert new["recipient"] == {"id": "7689966077600002"}


@pytest.mark.parametrize(
    ("mode", "quoted", "answered"),
    [
        ("private", None, "c_latest"),  # one private reply per comment: the latest one
        ("private", "c_quoted", "c_quoted"),
        ("public", None, FB_THREAD),  # publicly, in the thread
        ("public", "c_quoted", "c_quoted"),
    ],
)
async def test_a_comment_reply_answers_the_addressed_comment(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    mode: str,
    quoted: str | None,
    answered: str,
) -> None:
    channel = feed(meta_graph.graph_api_url, comment_replies=mode)
    address = {"account_id": FEED_PAGE_ID, "thread_id": FB_THREAD, "comment_id": "c_latest"}
    request = TEXT.model_copy(update={"reply_to_channel_message_id": quoted})
    dialog = target("facebook", comment_dialog_key(FB_THREAD), address)
    await channel.send(session, dialog, request, reply_id="r1")
    [call] = meta_graph.calls
    if mode == "private":
        assert (call.edge, call.body["recipient"]) == ("messages", {"comment_id": answered})
    else:
        assert (call.edge, call.node) == ("comments", answered)


@pytest.mark.parametrize("mode", ["private", "public"])
async def test_an_old_comment_dialog_answers_its_thread(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession, mode: str
) -> None:
    channel = ig_comments(meta_graph.graph_api_url, comment_replies=mode)
    dialog = target("instagram", comment_dialog_key(IG_THREAD), {})
    await channel.send(session, dialog, TEXT, reply_id="r1")
    [call] = meta_graph.calls
    answered = call.body["recipient"]["comment_id"] if mode == "private" else call.node
    assert answered == IG_THREAD
