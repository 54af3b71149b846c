"""The protocol's promises through the real actors: ``seq`` and ``best_effort`` per portal
delivery kind, and the batch's ``attempt`` counting retries (docs/protocol.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.custom_client import custom_connector, custom_message
from tests.harness import engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn, ScriptedFailure

pytestmark = pytest.mark.usefixtures("ray_session")


def shape(events: list[dict[str, Any]]) -> list[tuple[str, int | None, bool]]:
    return [(e["type"], e["seq"], e["best_effort"]) for e in events]


@pytest.fixture
async def best_effort_portal() -> AsyncIterator[PortalStandIn]:
    stand_in = PortalStandIn.create("globex")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


async def test_seq_and_best_effort_per_portal_delivery_kind(
    tmp_path: Path, portal: PortalStandIn, best_effort_portal: PortalStandIn
) -> None:
    portal.failures = [ScriptedFailure(503, retry_after="1")]
    config = engine_config(
        tmp_path,
        [
            portal.portal_config(linger_ms=50),
            best_effort_portal.portal_config(linger_ms=50, delivery="best_effort"),
        ],
        [custom_connector("shop", "acme"), custom_connector("mart", "globex")],
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    best_effort_portal.engine_public_key_b64 = engine.engine_public_key_b64
    typing = custom_message("a", 1, "typing", delivery="best_effort")
    try:
        status, body = await engine.push_custom(
            [custom_message("a", 0, "first"), typing, custom_message("a", 2, "second")], "shop"
        )
        assert status == 200, body
        status, body = await engine.push_custom(
            [custom_message("g", 0, "first"), custom_message("g", 1, "second")], "mart"
        )
        assert status == 200, body

        # guaranteed portal: its first attempt failed, which dropped the typing signal and
        # nothing else; the numbers it did not take leave no gap
        events = await portal.wait_for_events(3, timeout_s=30)
        assert shape(events) == [
            ("dialog.queued", 1, False),
            ("message.received", 2, False),
            ("message.received", 3, False),
        ]
        assert [batch["attempt"] for batch in portal.batches] == [2]
        status, body = await engine.portal_call(portal, "GET", "/api/v1/dead-letters")
        assert (status, body["dead_letters"]) == (200, [])

        # best-effort portal: no event is numbered, every one says it may be dropped
        events = await best_effort_portal.wait_for_events(3, timeout_s=30)
        assert shape(events) == [
            ("dialog.queued", None, True),
            ("message.received", None, True),
            ("message.received", None, True),
        ]
        metrics = await engine.metrics()
        assert metrics['openlines_dropped_total{portal="acme"}'] == 1
    finally:
        await stop_engine(engine)
