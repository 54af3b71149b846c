"""The visitor's typing reaches the portal as the contract's ``typing`` channel event, at
most one per visitor and window however often the widget says so (docs/channels/widget.md,
"Typing")."""

from __future__ import annotations

from typing import Any

from channels.widget.config import VISITOR_TYPING_EVERY_S
from engine.clock import ManualClock
from tests.engine.one_process import Served
from tests.engine.widget.widget_kit import VisitorClient
from tests.standins.portal import PortalStandIn


def stream(portal: PortalStandIn) -> list[str]:
    """The portal's events of the dialog as ``message:<text>`` and ``typing``, in order."""
    seen: list[str] = []
    for event in portal.events:
        data: dict[str, Any] = event["data"]
        if event["type"] == "message.received":
            seen.append(f"message:{data['content']['text']}")
        elif event["type"] == "channel.event":
            seen.append(data["kind"])
    return seen


async def test_a_typing_visitor_is_one_event_per_window_in_the_dialogs_stream(
    widget_served: Served, portal: PortalStandIn, clock: ManualClock
) -> None:
    visitor = await VisitorClient(widget_served).start()
    # No dialog yet: the event is stored and dropped, as the contract says (no dialog opened).
    assert await visitor.call("/typing", {}) == (200, {"sent": True})
    assert (await visitor.send("hi", "c-1"))[0] == 200
    await portal.wait_for_events(1, "message.")

    await clock.advance(VISITOR_TYPING_EVERY_S)
    answers = [await visitor.call("/typing", {}) for _ in range(8)]
    # Eight keystrokes' worth in one window, beyond the visitor's 5 messages a minute: one
    # event, and typing is not counted against the messages.
    assert answers == [(200, {"sent": True})] + [(200, {"sent": False})] * 7
    await clock.advance(VISITOR_TYPING_EVERY_S)
    assert await visitor.call("/typing", {}) == (200, {"sent": True})
    assert (await visitor.send("bye", "c-2"))[0] == 200

    await portal.wait_for_events(2, "message.")
    assert stream(portal) == ["message:hi", "typing", "typing", "message:bye"]
    [first, _] = portal.of_types("channel.event")
    assert first["data"]["customer_id"] == visitor.visitor_id
    assert first["data"]["route"]["channel"] == "widget"


async def test_typing_is_refused_without_a_token_from_another_origin_or_with_a_bad_body(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    stranger = VisitorClient(widget_served)
    status, body = await stranger.call("/typing", {})
    assert (status, body["error"]) == (401, "bad_token")
    elsewhere = VisitorClient(widget_served, origin="http://evil.test", token=visitor.token)
    assert (await elsewhere.call("/typing", {}))[0] == 403
    status, body = await visitor.call("/typing", {"text": "hi"})
    assert (status, body["error"]) == (422, "invalid_payload")
    status, body = await visitor.call("/typing", b"{")
    assert status == 400, body
    status, body = await visitor.call("/typing", b"{}", **{"Content-Type": "text/plain"})
    assert status == 415, body
    assert portal.of_types("channel.event") == []
