"""Delivery semantics on Ray: outages, isolation, TTL and dead letters, parallel queues."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.custom_client import custom_connector, custom_message
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn, ScriptedFailure

pytestmark = pytest.mark.usefixtures("ray_session")

OPENED_WITH_3_MESSAGES = ["dialog.queued"] + ["message.received"] * 3
OPENED_WITH_5_MESSAGES = ["dialog.queued"] + ["message.received"] * 5
"""A new conversation's stream: the dialog queues (no rules: nobody takes it), then its
messages."""


async def send(engine: RunningEngine, connector: str, messages: list[dict[str, object]]) -> None:
    status, reply = await engine.push_custom(messages, connector)
    assert status == 200, reply


@pytest.fixture
async def second_portal() -> AsyncIterator[PortalStandIn]:
    stand_in = PortalStandIn.create("globex")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


async def test_a_portal_that_is_down_delays_only_itself(
    tmp_path: Path, portal: PortalStandIn, second_portal: PortalStandIn
) -> None:
    portal.failures = [ScriptedFailure(503, retry_after="1")] * 3
    config = engine_config(
        tmp_path,
        [portal.portal_config(), second_portal.portal_config()],
        [custom_connector("shop", "acme"), custom_connector("mart", "globex")],
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = second_portal.engine_public_key_b64 = (
        engine.engine_public_key_b64
    )
    try:
        await send(engine, "shop", [custom_message("a", i, f"acme {i}") for i in range(5)])
        await send(engine, "mart", [custom_message("g", i, f"globex {i}") for i in range(5)])

        await second_portal.wait_for_events(5, "message.")
        # The failing portal needs three 1-second Retry-Afters before it takes anything: the
        # healthy one got everything while the failing one still had nothing.
        assert portal.events == [], "the healthy portal waited for the failing one"
        assert [e["type"] for e in second_portal.events] == OPENED_WITH_5_MESSAGES

        await portal.wait_for_events(5, "message.", timeout_s=30)
        assert [e["type"] for e in portal.events] == OPENED_WITH_5_MESSAGES
        assert [e["data"]["content"]["text"] for e in portal.messages()] == [
            f"acme {i}" for i in range(5)
        ]
        assert portal.attempts == 4
        metrics = await engine.metrics()
        assert metrics['openlines_retried_total{portal="acme"}'] == 3
    finally:
        await stop_engine(engine)


async def test_after_the_ttl_events_go_to_dead_letters_that_the_api_lists(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    portal.failures = [ScriptedFailure(500)] * 10_000
    config = engine_config(
        tmp_path,
        [portal.portal_config(linger_ms=0, retry_initial_s=60, retry_max_s=3600)],
        [custom_connector()],
        clock="manual",
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        await send(engine, "shop", [custom_message("a", i, f"m{i}") for i in range(3)])
        # Routed before time jumps: the dialog's own event is stamped now.
        await engine.metric_reaches('openlines_dialogs_opened_total{portal="acme"}', 1)
        deadline = time.monotonic() + 60
        letters: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            await engine.advance(1800)
            status, body = await engine.portal_call(portal, "GET", "/api/v1/dead-letters")
            assert status == 200, body
            letters = body["dead_letters"]
            if letters:
                break
        # Every event of the stream dead-letters, the dialog's own events too.
        assert [letter["type"] for letter in letters] == OPENED_WITH_3_MESSAGES
        assert [letter["seq"] for letter in letters] == [1, 2, 3, 4]
        assert [letter["data"]["content"]["text"] for letter in letters[1:]] == ["m0", "m1", "m2"]
        assert len({letter["dialog"]["id"] for letter in letters}) == 1
        assert all("ttl_s=86400" in str(letter["reason"]) for letter in letters)
        assert portal.events == []
        assert 3 <= portal.attempts <= 60
        metrics = await engine.metrics()
        assert metrics['openlines_dead_lettered_total{portal="acme"}'] == 4
        assert metrics['openlines_outbox_depth{portal="acme"}'] == 0
        assert metrics['openlines_unrouted{portal="acme"}'] == 0
        assert metrics['openlines_dead_letters{portal="acme"}'] == 4
    finally:
        await stop_engine(engine)


async def test_parallel_queue_keeps_each_dialog_in_order_with_batches_in_flight(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    portal.delay_s = 0.05
    config = engine_config(
        tmp_path,
        [portal.portal_config(queue="parallel", streams=4, batch_max_events=10)],
        [custom_connector()],
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        chats = [f"chat-{n}" for n in range(12)]
        for round_ in range(10):
            await asyncio.gather(
                *(send(engine, "shop", [custom_message(c, round_, f"{c}/{round_}")]) for c in chats)
            )
        await portal.wait_for_events(120, "message.", timeout_s=60)
        events = portal.events
        dialog_of_chat = {e["data"]["dialog_key"]: e["dialog"]["id"] for e in portal.messages()}
        assert len(set(dialog_of_chat.values())) == 12
        for chat in chats:
            stream = [e for e in events if e["dialog"]["id"] == dialog_of_chat[chat]]
            assert [e["type"] for e in stream] == ["dialog.queued"] + ["message.received"] * 10
            assert [e["data"]["content"]["text"] for e in stream[1:]] == [
                f"{chat}/{r}" for r in range(10)
            ]
        assert sorted(e["seq"] for e in events) == list(range(1, 133))
        assert len({batch["stream"] for batch in portal.batches}) > 1
        assert portal.max_in_flight > 1
    finally:
        await stop_engine(engine)


async def test_sequential_queue_has_one_batch_in_flight(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    portal.delay_s = 0.05
    config = engine_config(
        tmp_path, [portal.portal_config(batch_max_events=5)], [custom_connector()]
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        for chat in range(6):
            await send(engine, "shop", [custom_message(f"c{chat}", i, "x") for i in range(5)])
        await portal.wait_for_events(30, "message.", timeout_s=30)
        events = portal.events
        assert [e["type"] for e in events].count("dialog.queued") == 6
        assert [e["seq"] for e in events] == list(range(1, 37))
        assert portal.max_in_flight == 1
        assert len(portal.batches) >= 8  # 36 events, at most 5 a batch
    finally:
        await stop_engine(engine)
