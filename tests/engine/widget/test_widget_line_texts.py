"""The line's own texts reach the widget live, as every channel's customer gets them: outside
working hours the visitor reads when the line opens and their message is still taken; with
no operator free, their place in the queue (docs/routing.md, ``outside_hours`` and
``queue_position``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiohttp
import orjson

from engine.clock import ManualClock
from tests.engine.widget.widget_kit import (
    VisitorClient,
    connect_live,
    serve_widget,
    widget_connector,
)
from tests.standins.portal import PortalStandIn


def line(**sections: object) -> dict[str, str]:
    rules = {"portal": "p1", "line": "support", "queue": {"members": [{"operator": "anna"}]}}
    return {"p1-support.yaml": orjson.dumps({**rules, **sections}).decode()}


async def test_outside_hours_the_visitor_reads_when_the_line_opens_and_is_still_heard(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    opens = (dt.datetime.fromtimestamp(clock.now(), dt.UTC) + dt.timedelta(days=3)).date()
    rules = line(
        hours={"timezone": "UTC", "working_days": {opens.isoformat(): ["09:00-18:00"]}},
        outside_hours={"text": "We are closed now; we open {opens_at}. Leave your message."},
    )
    connectors = [widget_connector()]
    async with await serve_widget(tmp_path, clock, session, portal, connectors, rules) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        visitor = await VisitorClient(served).start()
        live = await connect_live(visitor)
        assert (await visitor.send("Is anyone there?", "c-1"))[0] == 200
        mine, closed = await live.until(2)
        assert mine["content"]["text"] == "Is anyone there?"
        assert closed["from"] == "line"
        assert closed["content"]["text"] == (
            f"We are closed now; we open {opens:%a} {opens.isoformat()} 09:00 (UTC). "
            "Leave your message."
        )
        [event] = await portal.wait_for_events(1, "message.")
        assert event["data"]["content"]["text"] == "Is anyone there?"
        await live.ws.close()


async def test_with_no_operator_free_the_visitor_reads_their_place_in_the_queue(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    rules = line(queue_position={"on_join": True, "text": "You are number {position}."})
    connectors = [widget_connector()]
    async with await serve_widget(tmp_path, clock, session, portal, connectors, rules) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        first = await VisitorClient(served).start()
        second = await VisitorClient(served).start()
        first_live, second_live = await connect_live(first), await connect_live(second)
        assert (await first.send("first", "c-1"))[0] == 200
        await portal.wait_for_events(1, "message.")
        assert (await second.send("second", "c-1"))[0] == 200
        assert (await first_live.until(2))[1]["content"]["text"] == "You are number 1."
        assert (await second_live.until(2))[1]["content"]["text"] == "You are number 2."
        await first_live.ws.close()
        await second_live.ws.close()
