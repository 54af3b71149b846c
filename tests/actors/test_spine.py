"""The vertical path on a real local Ray: custom webhooks in, sealed batches out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.usefixtures("ray_session")


def line_rules(distribution: str, **capacity: int) -> dict[str, dict[str, Any]]:
    """anna then boris, assigned without an accept so the portal sees who got what."""
    rules: dict[str, Any] = {
        "portal": "acme",
        "line": "support",
        "queue": {
            "members": [{"operator": "anna"}, {"operator": "boris"}],
            "distribution": distribution,
            "require_accept": False,
        },
    }
    if capacity:
        rules["capacity"] = capacity
    return {"acme-support": rules}


@pytest.fixture
def rules() -> dict[str, dict[str, Any]]:
    return line_rules("strictly")


@pytest.fixture
async def engine(
    tmp_path: Path, portal: PortalStandIn, rules: dict[str, dict[str, Any]]
) -> AsyncIterator[RunningEngine]:
    config = engine_config(tmp_path, [portal.portal_config()], [custom_connector()], rules)
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def go_online(engine: RunningEngine, portal: PortalStandIn, operator_id: str) -> None:
    status, body = await engine.portal_call(
        portal, "PUT", f"/api/v1/operators/{operator_id}/status", {"status": "online"}
    )
    assert status == 200, body
    assert body == {"operator_id": operator_id, "status": "online", "working": False}


async def test_messages_arrive_sealed_signed_in_order_with_sequence(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    await go_online(engine, portal, "anna")
    messages = [custom_message("chat-1", i, f"text {i}") for i in range(20)]
    for start in range(0, 20, 5):
        status, _ = await engine.push_custom(messages[start : start + 5])
        assert status == 200

    await portal.wait_for_events(20, "message.")
    events = portal.events

    received = [e for e in events if e["type"] == "message.received"]
    assert [e["data"]["content"]["text"] for e in received] == [f"text {i}" for i in range(20)]
    # The dialog opens with dialog.queued; the assignment joins the stream where it was made.
    types = [e["type"] for e in events]
    assert len(events) == 22 and types[0] == "dialog.queued"
    assert types.count("dialog.assigned") == 1
    assert [e["seq"] for e in events] == list(range(1, 23))
    assert len({e["id"] for e in events}) == 22
    assert len({e["dialog"]["id"] for e in events}) == 1
    assert events[0]["data"]["reason"] == "new" and events[0]["data"]["position"] == 1
    assigned_at = types.index("dialog.assigned")
    assert events[assigned_at]["data"]["operator_id"] == "anna"
    assert events[assigned_at]["data"]["via"] == "direct"
    # Each event carries the dialog as it stands at that point of its stream.
    assert all(
        (e["dialog"]["state"], e["dialog"]["operator_id"]) == ("waiting", None)
        for e in events[:assigned_at]
    )
    assert all(
        (e["dialog"]["state"], e["dialog"]["operator_id"]) == ("assigned", "anna")
        for e in events[assigned_at:]
    )
    assert portal.rejected == []


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # evenly: the available operator whose last assignment is oldest.
        (line_rules("evenly"), ["anna", "boris", "anna"]),
        # strictly: the first available in queue order; anna is full after two.
        (line_rules("strictly", max_dialogs_per_operator=2), ["anna", "anna", "boris"]),
    ],
    ids=["evenly", "strictly"],
)
async def test_new_dialogs_are_distributed_among_online_operators(
    engine: RunningEngine, portal: PortalStandIn, expected: list[str]
) -> None:
    await go_online(engine, portal, "anna")
    await go_online(engine, portal, "boris")
    for count, chat in enumerate(("a", "b", "c"), start=1):
        assert (await engine.push_custom([custom_message(chat, 1, "hello")]))[0] == 200
        await portal.wait_for_events(count, "dialog.assigned")

    assigned = portal.of_types("dialog.assigned")
    assert [e["data"]["operator_id"] for e in assigned] == expected
    assert [e["dialog"]["operator_id"] for e in assigned] == expected
    dialog_of_chat = {e["data"]["dialog_key"]: e["dialog"]["id"] for e in portal.messages()}
    assert [e["dialog"]["id"] for e in assigned] == [dialog_of_chat[c] for c in ("a", "b", "c")]
    assert len(set(dialog_of_chat.values())) == 3

    for chat in ("a", "b", "c"):
        assert (await engine.push_custom([custom_message(chat, 2, "still there?")]))[0] == 200
    await portal.wait_for_events(6, "message.")
    later = {e["data"]["dialog_key"]: e["dialog"] for e in portal.messages()[3:]}
    assert [later[chat]["operator_id"] for chat in ("a", "b", "c")] == expected
    assert {later[chat]["state"] for chat in ("a", "b", "c")} == {"assigned"}
    assert [e["seq"] for e in portal.events] == list(range(1, len(portal.events) + 1))


async def test_duplicate_event_ids_are_stored_once(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    body, headers = signed_custom_request([custom_message("chat-1", 1, "once")])
    for _ in range(3):
        assert (await engine.request("POST", "/hooks/custom/shop", body, headers))[0] == 200
    assert (await engine.push_custom([custom_message("chat-1", 2, "after")]))[0] == 200

    events = await portal.wait_for_events(2, "message.")

    assert [e["data"]["content"]["text"] for e in events] == ["once", "after"]
    assert [e["type"] for e in portal.events] == ["dialog.queued"] + ["message.received"] * 2
    metrics = await engine.metrics()
    assert metrics['openlines_duplicates_total{channel="custom"}'] == 2
    assert metrics['openlines_stored_total{channel="custom"}'] == 2
