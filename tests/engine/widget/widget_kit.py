"""The engine's app in one process (``tests.engine.one_process``) with a widget connector,
and a visitor as a browser's script would be one: aiohttp calls and a WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.clock import ManualClock
from engine.config import parse_engine_config
from tests.engine.conftest import write_rules
from tests.engine.one_process import Served, one_process_engine
from tests.standins.portal import PortalStandIn

WIDGET_ID = "shop-widget-0001"
OTHER_WIDGET_ID = "other-widget-0002"
ORIGIN = "http://shop.test"
RULES = {
    "p1-support.yaml": "portal: p1\nline: support\nqueue:\n  members:\n"
    "    - operator: anna\n  require_accept: false\n"
}


def widget_connector(
    connector_id: str = "site",
    widget_id: str = WIDGET_ID,
    origins: tuple[str, ...] = (ORIGIN,),
    **settings: Any,
) -> dict[str, Any]:
    return {
        "id": connector_id,
        "channel": "widget",
        "portal": "p1",
        "line": "support",
        "credentials": {"widget_id": widget_id, "allowed_origins": list(origins), **settings},
    }


async def serve_widget(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    connectors: list[dict[str, Any]],
    rules: dict[str, str] = RULES,
    max_body_bytes: int = 8 * 1024 * 1024,
) -> Any:
    write_rules(tmp_path / "rules", rules)
    config = parse_engine_config(
        {
            "data_dir": str(tmp_path / "data"),
            "rules_dir": str(tmp_path / "rules"),
            "clock": "manual",
            "max_body_bytes": max_body_bytes,
            "portals": [portal.portal_config(linger_ms=0)],
            "connectors": connectors,
        },
        "test config",
    )
    return one_process_engine(config, clock, session)


@pytest.fixture
async def widget_served(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> AsyncIterator[Served]:
    connectors = [
        widget_connector(
            visitor_messages_per_minute=5,
            address_requests_per_minute=1000,
            max_file_bytes=64 * 1024,
        ),
        widget_connector("other", OTHER_WIDGET_ID, ("http://other.test",)),
    ]
    async with await serve_widget(tmp_path, clock, session, portal, connectors) as running:
        portal.engine_public_key_b64 = running.engine.engine_key["public_key"]
        yield running


@dataclass
class VisitorClient:
    """A visitor of ``widget_id``: their token, their calls, their live connection."""

    served: Served
    widget_id: str = WIDGET_ID
    origin: str = ORIGIN
    token: str = ""
    visitor_id: str = ""
    session_json: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"/widget/{self.widget_id}"

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Origin": self.origin, "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **extra}

    async def start(self, token: str | None = None) -> VisitorClient:
        status, body = await self.served.request(
            "POST", f"{self.base}/session", orjson.dumps({"token": token}), self.headers()
        )
        assert status in (200, 201), body
        self.token, self.visitor_id, self.session_json = body["token"], body["visitor_id"], body
        return self

    async def call(self, path: str, data: object, **headers: str) -> tuple[int, Any]:
        body = data if isinstance(data, bytes) else orjson.dumps(data)
        return await self.served.request("POST", self.base + path, body, self.headers(**headers))

    async def send(self, text: str, client_id: str) -> tuple[int, Any]:
        return await self.call("/messages", {"client_id": client_id, "text": text})


@dataclass
class LiveClient:
    """A live connection: the frames it received, in order."""

    ws: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if "seq" in frame]

    async def until(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Read frames until ``count`` entries arrived; a deadline, never a fixed sleep."""
        async with asyncio.timeout(timeout_s):
            while len(self.entries) < count:
                message = await self.ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT, message
                self.frames.append(orjson.loads(message.data))
        return self.entries


async def connect_live(
    visitor: VisitorClient, after: int = 0, token: str | None = None
) -> LiveClient:
    ws = await visitor.served.session.ws_connect(
        f"{visitor.served.url}{visitor.base}/live", headers={"Origin": visitor.origin}
    )
    await ws.send_str(orjson.dumps({"token": token or visitor.token, "after": after}).decode())
    live = LiveClient(ws)
    first = await ws.receive(timeout=10)
    live.frames.append(orjson.loads(first.data))
    return live
