"""Facebook's events that had no kind, end to end in one process: a comment hidden and shown
again, a reaction to a comment, a reaction to the post (ignored, counted), and a customer's
message in standby (another app owns the conversation) reaching the portal as channel events
(docs/channels/facebook.md, "Page comments", "Standby")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.clock import ManualClock
from tests.engine.meta_kit import APP
from tests.engine.meta_kit import post as post_meta
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, serving
from tests.standins.meta_api import (
    FEED_PAGE_ID,
    PAGE_ID,
    PAGE_TOKEN,
    MetaGraphStandIn,
    recorded_json,
)
from tests.standins.portal import PortalStandIn

PSID = "7689966077685933"
THREAD = "690891113073877_759878495960329"


@pytest.fixture
async def served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    portal.now = clock.now  # the test moves the engine's clock by an hour
    page = {**APP, "graph_api_url": graph.graph_api_url, "page_access_token": PAGE_TOKEN}
    connectors = [
        connector("fb", "facebook", **page, page_id=PAGE_ID),
        connector("fbc", "facebook", **page, page_id=FEED_PAGE_ID, receive=["comments"]),
    ]
    async with serving(tmp_path, clock, session, portal, connectors) as running:
        yield running


async def post(served: Served, body: dict[str, Any]) -> None:
    await post_meta(served, "facebook", body)


async def test_hide_unhide_reactions_and_standby_reach_the_portal(
    served: Served, portal: PortalStandIn, clock: ManualClock
) -> None:
    await post(served, recorded_json("fb_feed_comment.json"))
    await post(served, recorded_json("fb_text.json"))
    messages = await portal.wait_for_events(2, "message.")
    dialogs = {m["data"]["route"]["connector_id"]: m["dialog"] for m in messages}

    for name in (
        "fb_feed_hide",
        "fb_feed_unhide",
        "fb_feed_reaction_post",  # the post is no thread: ignored, counted
        "fb_feed_reaction_comment",
    ):
        await post(served, recorded_json(f"{name}.json"))
    await clock.advance(3600)
    await post(served, recorded_json("fb_standby_text.json"))
    events = await portal.wait_for_events(4, "channel.")
    seen = [
        (e["data"]["kind"], e["dialog"]["id"], e["data"]["channel_message_ids"]) for e in events
    ]
    comments = dialogs["fbc"]["id"]
    assert seen == [
        ("hidden", comments, [THREAD]),
        ("unhidden", comments, ["690891113073877_759878495961111"]),
        ("reaction", comments, ["690891113073877_759878495962222"]),
        ("standby", dialogs["fb"]["id"], ["m_standby_1"]),
    ]
    assert events[2]["data"]["reaction"] == "❤️"
    standby = events[3]
    assert standby["data"]["extras"] == {"text": "А оператор? 🙋"}
    assert standby["data"]["opens_window"] is True
    assert standby["dialog"]["window_closes_at"] == clock.now() + 24 * 3600  # it counts
    assert len(portal.of_types("message.")) == 2  # none of them is a customer message
    counters = served.engine.counters.snapshot()
    assert any(
        name == "openlines_ignored_total" and ("reason", "feed:reaction:post") in labels
        for name, labels in counters
    )
