"""The engine's app served in one process (``tests.engine.one_process``) with a Telegram
connector and a portal, and the signed calls tests make to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from tests.standins.telegram_api import SECRET_HEADER, TelegramApiStandIn, text_update

SECRET = "telegram-secret-token"
ADMIN = "admin-token-for-tests"
RULES = {
    "p1-support.yaml": "portal: p1\nline: support\nqueue:\n  members:\n"
    "    - operator: anna\n  require_accept: false\n"
}


update = text_update
"""A text message update of chat ``chat_id`` (``tests.standins.telegram_api``)."""


def connector(connector_id: str, channel: str, **credentials: object) -> dict[str, Any]:
    """A connector of portal p1's line ``support``, as the engine's config has it."""
    return {
        "id": connector_id,
        "channel": channel,
        "portal": "p1",
        "line": "support",
        "credentials": credentials,
    }


@asynccontextmanager
async def serving(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    connectors: list[dict[str, Any]],
    **config: object,
) -> AsyncIterator[Served]:
    """The engine in one process with these connectors, serving portal p1 (the stand-in)."""
    write_rules(tmp_path / "rules", RULES)
    parsed = parse_engine_config(
        {
            "data_dir": str(tmp_path / "data"),
            "rules_dir": str(tmp_path / "rules"),
            "clock": "manual",
            "portals": [portal.portal_config(linger_ms=0)],
            "connectors": connectors,
            **config,
        },
        "test config",
    )
    async with one_process_engine(parsed, clock, session) as running:
        portal.engine_public_key_b64 = running.engine.engine_key["public_key"]
        await first_polls_stored(running)
        yield running


async def first_polls_stored(served: Served, timeout_s: float = 10.0) -> None:
    """The polling loop's first tick polls every polling connector at once; tests start
    once those polls are stored, so what a test puts at a stand-in is fetched by the poll
    its clock advance makes due (the loop's own store call was answered first, so by then
    it sleeps on the manual clock)."""
    engine, intake = served.engine, served.intake
    polling = [
        c.id
        for c in engine.registry.connectors.values()
        if engine.channel(c).poll_interval_s is not None
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for connector_id in polling:
        while await intake.call(intake.store.poll_cursor, connector_id) is None:
            assert loop.time() < deadline, f"the first poll of {connector_id} was not stored"


@pytest.fixture
async def served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    telegram: TelegramApiStandIn,
) -> AsyncIterator[Served]:
    telegram_connector = connector(
        "tg",
        "telegram",
        bot_token=telegram.token,
        secret_token=SECRET,
        api_base_url=telegram.base_url,
    )
    async with serving(
        tmp_path,
        clock,
        session,
        portal,
        [telegram_connector],
        admin_token=ADMIN,
        max_body_bytes=64 * 1024,
    ) as running:
        yield running


async def post_update(
    served: Served, body: object, secret: str | None = SECRET, **headers: str
) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **headers}
    if secret is not None:
        sent[SECRET_HEADER] = secret
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return await served.request("POST", "/hooks/telegram/tg", payload, sent)


async def portal_call(
    served: Served, portal: PortalStandIn, method: str, path: str, data: object = None
) -> tuple[int, Any]:
    body = b"" if data is None else orjson.dumps(data)
    headers = {**portal.side.sign_request(method, path, body), "Content-Type": "application/json"}
    return await served.request(method, path, body, headers)


async def admin(
    served: Served, method: str, path: str, data: object = None, token: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = b"" if data is None else orjson.dumps(data)
    return await served.request(method, path, body, headers)
