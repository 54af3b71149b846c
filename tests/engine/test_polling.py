"""Polling connectors in one process: a Telegram connector that polls ``getUpdates`` on the
engine's clock instead of taking webhooks. Items reach the portal once, in order; the cursor
is stored with them, so a restarted loop neither repeats nor skips; a failing provider is
counted and polled again from the same cursor; the interval comes from the connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from engine.clock import ManualClock
from engine.polling import TICK_S, PollingLoop
from tests.engine.conftest import eventually
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, serving, update
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, recorded_update

INTERVAL_S = 30.0


@pytest.fixture
async def polling_served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    telegram: TelegramApiStandIn,
) -> AsyncIterator[Served]:
    polling = connector(
        "tgp",
        "telegram",
        bot_token=telegram.token,
        api_base_url=telegram.base_url,
        poll_interval_s=INTERVAL_S,
    )
    async with serving(tmp_path, clock, session, portal, [polling]) as running:
        yield running


def polls(telegram: TelegramApiStandIn) -> list[int | None]:
    offsets = [call.params.get("offset") for call in telegram.calls_to("getUpdates")]
    return [None if offset is None else int(offset) for offset in offsets]


def texts(portal: PortalStandIn) -> list[str]:
    return [e["data"]["content"]["text"] for e in portal.of_types("message.")]


async def test_polled_updates_reach_the_portal_once_and_the_offset_confirms_them(
    polling_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    for update_id, text in ((10, "первое 👋"), (11, "second"), (12, "third")):
        telegram.queue_update(update(update_id, 42, text))
    telegram.queue_update({**recorded_update("my_chat_member"), "update_id": 13})

    await clock.advance(INTERVAL_S)
    await portal.wait_for_events(3, "message.")
    assert texts(portal) == ["первое 👋", "second", "third"]
    assert polls(telegram) == [None, None]
    cursor = await polling_served.intake.call(polling_served.intake.store.poll_cursor, "tgp")
    assert cursor is not None and cursor[0] == "14"

    telegram.queue_update(update(14, 42, "fourth"))
    await clock.advance(INTERVAL_S - TICK_S)  # not yet: the interval has not passed
    assert polls(telegram) == [None, None]
    await clock.advance(TICK_S)
    await portal.wait_for_events(4, "message.")
    assert texts(portal) == ["первое 👋", "second", "third", "fourth"]
    assert polls(telegram) == [None, None, 14]
    assert telegram.pending == [update(14, 42, "fourth")]  # confirmed by the next offset


async def test_a_restarted_loop_starts_from_the_stored_cursor_and_repeats_nothing(
    polling_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    telegram.queue_update(update(20, 42, "before the restart"))
    await clock.advance(INTERVAL_S)
    await portal.wait_for_events(1, "message.")
    engine = polling_served.engine
    # A second loop over the same intake, as after a restart of channel actor 0: Telegram
    # still holds update 20 (no later offset confirmed it yet).
    restarted = PollingLoop(
        lambda: engine.registry,
        engine.channel,
        polling_served.intake,
        polling_served.handoff,
        polling_served.in_progress,
        polling_served.session,
        clock,
        engine.counters,
        0,
    )
    telegram.queue_update(update(21, 42, "after the restart"))
    await clock.advance(INTERVAL_S)
    assert await restarted.poll_due() in (0, 1)  # the running loop may have polled first
    await portal.wait_for_events(2, "message.")
    assert texts(portal) == ["before the restart", "after the restart"]
    assert set(polls(telegram)[2:]) == {21}


async def test_a_failing_poll_is_counted_and_retried_from_the_same_cursor(
    polling_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    telegram.queue_update(update(30, 42, "one"))
    await clock.advance(INTERVAL_S)
    await portal.wait_for_events(1, "message.")
    telegram.fail_next(502, "Bad Gateway", method="getUpdates")
    telegram.queue_update(update(31, 42, "two"))
    await clock.advance(INTERVAL_S)
    labels = (("channel", "telegram"), ("connector", "tgp"))
    key = ("openlines_poll_failed_total", labels)
    await eventually(lambda: polling_served.engine.counters.snapshot().get(key) == 1)
    await clock.advance(INTERVAL_S)
    await portal.wait_for_events(2, "message.")
    assert polls(telegram) == [None, None, 31, 31]


async def test_more_than_one_page_is_fetched_in_one_round(
    polling_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    for update_id in range(100, 250):
        telegram.queue_update(update(update_id, 7, f"m{update_id}"))
    await clock.advance(INTERVAL_S)
    events = await portal.wait_for_events(150, "message.", timeout_s=30)
    assert [e["data"]["content"]["text"] for e in events] == [f"m{i}" for i in range(100, 250)]
    assert polls(telegram) == [None, None, 200]


async def test_a_polling_connector_refuses_webhooks(polling_served: Served) -> None:
    status, body = await polling_served.request(
        "POST", "/hooks/telegram/tgp", b"{}", {"Content-Type": "application/json"}
    )
    assert (status, body["error"]) == (401, "bad_signature") and "polls" in body["message"]


async def test_a_throttled_poll_waits_the_time_the_provider_named(
    polling_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    """Telegram's "Flood control exceeded on method 'GetUpdates'" is a 429 with
    ``retry_after``: the loop polls that connector again only after it, not every interval."""
    telegram.rate_limit_next(100, method="getUpdates")
    telegram.queue_update(update(40, 42, "after the flood"))
    await clock.advance(INTERVAL_S)
    labels = (("channel", "telegram"), ("connector", "tgp"))
    key = ("openlines_poll_failed_total", labels)
    await eventually(lambda: polling_served.engine.counters.snapshot().get(key) == 1)
    await clock.advance(INTERVAL_S * 3 - 1)  # 89 s of the 100: three intervals passed
    assert polls(telegram) == [None, None]
    await clock.advance(TICK_S + 10)
    await portal.wait_for_events(1, "message.")
    assert polls(telegram) == [None, None, None]
