"""The vertical path on a real local Ray: custom webhooks in, sealed batches out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.usefixtures("ray_session")

RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "operators": [{"id": "anna"}, {"id": "boris"}],
    }
}


@pytest.fixture
async def engine(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[RunningEngine]:
    config = engine_config(tmp_path, [portal.portal_config()], [custom_connector()], RULES)
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def test_messages_arrive_sealed_signed_in_order_with_sequence(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    messages = [custom_message("chat-1", i, f"text {i}") for i in range(20)]
    for start in range(0, 20, 5):
        status, _ = await engine.push_custom(messages[start : start + 5])
        assert status == 200

    events = await portal.wait_for_events(20)

    assert [e["data"]["content"]["text"] for e in events] == [f"text {i}" for i in range(20)]
    assert [e["seq"] for e in events] == list(range(1, 21))
    assert len({e["id"] for e in events}) == 20
    assert events[0]["dialog"]["opened"] is True
    assert all(e["dialog"]["opened"] is False for e in events[1:])
    assert {e["dialog"]["operator_id"] for e in events} == {"anna"}
    assert portal.rejected == []


async def test_new_dialogs_go_round_robin(engine: RunningEngine, portal: PortalStandIn) -> None:
    for chat in ("a", "b", "c"):
        assert (await engine.push_custom([custom_message(chat, 1, "hello")]))[0] == 200
        await portal.wait_for_events(len(portal.events) + 1)

    assert [e["dialog"]["operator_id"] for e in portal.events] == ["anna", "boris", "anna"]
    assert len({e["dialog"]["id"] for e in portal.events}) == 3


async def test_duplicate_event_ids_are_stored_once(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    body, headers = signed_custom_request([custom_message("chat-1", 1, "once")])
    for _ in range(3):
        assert (await engine.request("POST", "/hooks/custom/shop", body, headers))[0] == 200
    assert (await engine.push_custom([custom_message("chat-1", 2, "after")]))[0] == 200

    events = await portal.wait_for_events(2)

    assert [e["data"]["content"]["text"] for e in events] == ["once", "after"]
    metrics = await engine.metrics()
    assert metrics['openlines_duplicates_total{channel="custom"}'] == 2
    assert metrics['openlines_stored_total{channel="custom"}'] == 2
