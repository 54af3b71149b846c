"""Instagram's 750 private replies an hour, kept by the engine (docs/channels/instagram.md,
"Limits"): replies over the limit wait stored, the portal sees ``reply.queued`` and then
``reply.sent``, they go out in order as the bucket allows, and a restart neither refills
the bucket nor loses them. Nothing is left to Meta's throttling answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from channels.meta.comments import comment_dialog_key
from channels.meta.instagram import PRIVATE_REPLIES
from engine.api_models import ReplyBody
from engine.delivery.host import MailboxHost
from engine.models import OutboundText, Route
from engine.routing.state import DialogState
from tests.engine.conftest import LINE_ID, HostKit, eventually
from tests.standins.meta_api import (
    APP_SECRET,
    IG_COMMENTS_ACCOUNT_ID,
    IG_TOKEN,
    VERIFY_TOKEN,
    MetaGraphStandIn,
)
from tests.standins.portal import PortalStandIn

ROUTE = Route(portal_id="p1", line_id=LINE_ID, connector_id="ig-comments", channel="instagram")
BURST = int(PRIVATE_REPLIES.rate.burst)
INTERVAL_S = 1 / PRIVATE_REPLIES.rate.per_s  # one more private reply per interval


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraphStandIn]:
    async with MetaGraphStandIn() as api:
        yield api


def add_instagram(kit: HostKit, graph: MetaGraphStandIn, replies: str = "private") -> None:
    kit.channels.add(
        ROUTE,
        {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "account_id": IG_COMMENTS_ACCOUNT_ID,
            "access_token": IG_TOKEN,
            "receive": ["comments"],
            "comment_replies": replies,
            "graph_api_url": graph.graph_api_url,
        },
    )


async def host_for(kit: HostKit, portal: PortalStandIn) -> MailboxHost:
    return await kit.host(kit.config(portal, linger_ms=0))


async def threads(kit: HostKit, host: MailboxHost, count: int) -> list[DialogState]:
    """``count`` comment threads, each its own dialog (one private reply per comment)."""
    return [
        await kit.dialog(host, "p1", comment_dialog_key(f"1790{n:05d}"), route=ROUTE)
        for n in range(count)
    ]


async def reply_to_each(host: MailboxHost, dialogs: list[DialogState]) -> list[str]:
    router = await host.router("p1")
    return [
        await router.reply(d.dialog_id, ReplyBody(content=OutboundText(text=f"Thanks {n}")))
        for n, d in enumerate(dialogs)
    ]


def private_replies(graph: MetaGraphStandIn) -> list[str]:
    """The comment ids private replies went to, in the order Meta got them."""
    return [body["recipient"]["comment_id"] for body in graph.sent("messages")]


def by_type(portal: PortalStandIn, kind: str) -> list[dict[str, Any]]:
    return [event for event in portal.events if event["type"] == kind]


async def over_the_burst(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> tuple[MailboxHost, list[DialogState], list[str]]:
    """Private replies to ``BURST + 2`` threads: the burst is sent, two are queued."""
    add_instagram(kit, graph)
    host = await host_for(kit, portal)
    dialogs = await threads(kit, host, BURST + 2)
    reply_ids = await reply_to_each(host, dialogs)
    await portal.wait_for_events(BURST + 2, "reply.")
    return host, dialogs, reply_ids


async def test_private_replies_over_the_hourly_limit_are_queued_then_sent_in_order(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    started = kit.clock.now()
    _, dialogs, reply_ids = await over_the_burst(kit, portal, graph)
    assert len(by_type(portal, "reply.sent")) == BURST
    queued = by_type(portal, "reply.queued")
    assert [event["data"]["reply_id"] for event in queued] == reply_ids[BURST:]
    assert [event["data"]["send_at"] for event in queued] == pytest.approx(
        [started + INTERVAL_S, started + 2 * INTERVAL_S]
    )
    assert queued[0]["data"]["limit"] == PRIVATE_REPLIES.limit
    assert queued[0]["dialog"]["id"] == dialogs[BURST].dialog_id
    assert len(private_replies(graph)) == BURST  # none was sent to be throttled by Meta

    await kit.clock.advance(INTERVAL_S - 0.01)
    assert len(private_replies(graph)) == BURST
    await kit.clock.advance(0.02)
    await eventually(lambda: len(private_replies(graph)) == BURST + 1)
    await kit.clock.advance(INTERVAL_S)
    await portal.wait_for_events(BURST + 4, "reply.")
    sent = [event["data"]["reply_id"] for event in by_type(portal, "reply.sent")]
    # The burst went out together (other dialogs, any order); the waiting ones in order.
    assert sorted(sent[:BURST]) == sorted(reply_ids[:BURST])
    assert sent[BURST:] == reply_ids[BURST:]
    assert private_replies(graph)[BURST:] == [f"1790{n:05d}" for n in (BURST, BURST + 1)]
    assert kit.reader().replies("p1") == []


async def test_a_restart_keeps_the_bucket_and_the_waiting_replies(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    host, _, reply_ids = await over_the_burst(kit, portal, graph)
    await kit.close_host(host)  # two replies wait, stored

    assert [r.reply_id for r in kit.reader().replies("p1")] == reply_ids[BURST:]
    await host_for(kit, portal)
    # Told again, and waiting again: a fresh bucket would have sent both at once.
    await portal.wait_for_events(4, "reply.queued")
    await kit.clock.advance(INTERVAL_S - 0.01)
    assert len(private_replies(graph)) == BURST
    await kit.clock.advance(2 * INTERVAL_S)
    await portal.wait_for_events(BURST + 2, "reply.sent")
    sent = [e["data"]["reply_id"] for e in by_type(portal, "reply.sent")]
    assert sorted(sent) == sorted(reply_ids) and sent[BURST:] == reply_ids[BURST:]
    assert len(private_replies(graph)) == BURST + 2


async def test_public_replies_are_not_held_to_the_private_limit(
    kit: HostKit, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    add_instagram(kit, graph, replies="public")
    host = await host_for(kit, portal)
    dialogs = await threads(kit, host, BURST + 2)
    await reply_to_each(host, dialogs)
    await portal.wait_for_events(BURST + 2, "reply.sent")
    assert by_type(portal, "reply.queued") == []
