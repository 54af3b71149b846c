"""The widget bench's visitors against the engine's app in one process: sessions, live
connections, and senders whose every message comes back on its own connection."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bench.widget_connections import ORIGIN, Visitors
from engine.clock import ManualClock
from tests.engine.widget.widget_kit import serve_widget, widget_connector
from tests.standins.portal import PortalStandIn


async def test_visitors_connect_and_each_message_comes_back_live(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    connectors = [
        widget_connector(
            origins=(ORIGIN,),
            address_requests_per_minute=10_000,
            visitor_messages_per_minute=10_000,
        )
    ]
    async with await serve_widget(tmp_path, clock, session, portal, connectors) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        visitors = Visitors(served.url, "shop-widget-0001")
        await visitors.sessions(session, 6, 3)
        await visitors.connect(session, 3)
        assert len(visitors.sockets) == 6
        sent = await visitors.send_for(session, 2, 0.3)
        await visitors.close()
        assert sent["messages"] >= 2 and sent["echo_ms"]["count"] == sent["messages"]
        await portal.wait_for_events(sent["messages"], "message.")
