"""Polling Instagram comments against the Graph stand-in: new comments and replies in time
order, a cursor that repeats none and skips none (also for comments sharing a second and for
pages), the account's own comments ignored, and the same keys as the webhook's."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from channels.meta.instagram import InstagramChannel, InstagramCredentials
from channels.meta.instagram_polling import Cursor, instagram_time
from engine.errors import PermanentSendError, ValidationFailedError
from tests.channels.conftest import FIXED_NOW_S, route_for
from tests.channels.meta_kit import parse_with
from tests.standins.meta_api import (
    APP_SECRET,
    IG_COMMENTS_ACCOUNT_ID,
    IG_TOKEN,
    VERIFY_TOKEN,
    MetaGraphStandIn,
)

MEDIA = "18050310947722369"


def make_channel(graph: MetaGraphStandIn, **extra: Any) -> InstagramChannel:
    fields = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "account_id": IG_COMMENTS_ACCOUNT_ID,
        "access_token": IG_TOKEN,
        "graph_api_url": graph.graph_api_url,
        "receive": ["comments"],
        **extra,
    }
    return InstagramChannel(route_for("instagram"), InstagramCredentials.model_validate(fields))


def comment(
    cid: str, at: str, text: str, author: str = "848067418322071", **extra: Any
) -> dict[str, Any]:
    return {
        "id": cid,
        "text": text,
        "timestamp": f"2026-11-30T{at}+0000",
        "from": {"id": author, "username": f"user{author[-3:]}"},
        **extra,
    }


async def test_polls_return_new_comments_once_in_time_order(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph)
    meta_graph.media[IG_COMMENTS_ACCOUNT_ID] = [{"id": MEDIA, "media_product_type": "REELS"}]
    reply = comment("17867301270529999", "10:05:00", "А размер M? 🙏")
    meta_graph.comments[MEDIA] = [
        comment("17867301270523379", "10:00:00", "Price please 🙏", replies={"data": [reply]}),
        comment("17867301270520001", "09:59:00", "First!"),
        comment("17867301270528888", "10:06:00", "Yes, DM us", author=IG_COMMENTS_ACCOUNT_ID),
    ]
    first = await channel.poll(session, None, FIXED_NOW_S)
    got = [(m.channel_event_id, m.dialog_key, m.content.text) for m in first.parsed.messages]  # type: ignore[union-attr]
    assert got == [
        ("17867301270520001", "comment:17867301270520001", "First!"),
        ("17867301270523379", "comment:17867301270523379", "Price please 🙏"),
        ("17867301270529999", "comment:17867301270523379", "А размер M? 🙏"),
    ]
    assert first.parsed.ignored == ("own_comment",)
    assert first.parsed.messages[2].extras == {
        "media_id": MEDIA,
        "media_product_type": "REELS",
    }
    assert Cursor.decode(first.cursor) == Cursor(
        instagram_time("2026-11-30T10:06:00+0000"), frozenset({"17867301270528888"})
    )

    again = await channel.poll(session, first.cursor, FIXED_NOW_S)
    assert again.parsed.messages == () and again.cursor == first.cursor

    # A comment in the same second as the cursor, another later: both new, nothing repeated.
    meta_graph.comments[MEDIA].append(comment("17867301270520002", "10:06:00", "Same second"))
    meta_graph.comments[MEDIA].append(comment("17867301270520003", "10:07:30", "Later"))
    third = await channel.poll(session, again.cursor, FIXED_NOW_S)
    assert [m.channel_event_id for m in third.parsed.messages] == [
        "17867301270520002",
        "17867301270520003",
    ]


async def test_pages_are_followed_and_polled_ids_match_the_webhooks(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph)
    meta_graph.media[IG_COMMENTS_ACCOUNT_ID] = [{"id": MEDIA, "media_product_type": "FEED"}]
    meta_graph.comments[MEDIA] = [
        comment(f"1786730127052{i:04d}", f"10:{i // 60:02d}:{i % 60:02d}", f"c{i}")
        for i in range(120)
    ]
    meta_graph.comments[MEDIA][0] = comment(
        "17867301270523379", "09:00:00", "Price please 🙏", author="848067418322071"
    )
    polled = await channel.poll(session, None, FIXED_NOW_S)
    assert len(polled.parsed.messages) == 120 and not polled.more
    assert len([c for c in meta_graph.calls if c.edge == "comments"]) == 3  # 50 + 50 + 20
    (hooked,) = parse_with(channel, "ig_comment").messages
    assert hooked.id in {m.id for m in polled.parsed.messages}


def test_only_a_connector_reading_comments_polls(meta_graph: MetaGraphStandIn) -> None:
    assert make_channel(meta_graph).poll_interval_s == 900
    assert make_channel(meta_graph, comment_poll_interval_s=3600).poll_interval_s == 3600
    assert make_channel(meta_graph, comment_poll_interval_s=None).poll_interval_s is None
    assert make_channel(meta_graph, receive=["messages"]).poll_interval_s is None


async def test_a_failing_graph_and_a_foreign_cursor(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    channel = make_channel(meta_graph, access_token="EAAG-revoked")
    with pytest.raises(PermanentSendError, match="reconnect the channel"):
        await channel.poll(session, None, FIXED_NOW_S)
    with pytest.raises(ValidationFailedError, match="cursor"):
        await make_channel(meta_graph).poll(session, "not-ours", FIXED_NOW_S)
