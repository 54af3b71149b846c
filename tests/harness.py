"""Running the engine's actors inside the test session's Ray, against loopback stand-ins."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from actors.settings import ActorSettings
from actors.supervisor import EngineActors
from bench.engine_proc import parse_metric_lines
from engine.config import EngineConfig, parse_engine_config
from engine.security.keys import EngineSigningKey
from tests.custom_client import signed_custom_request
from tests.standins.portal import PortalStandIn

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class RunningEngine:
    actors: EngineActors
    config: EngineConfig
    session: aiohttp.ClientSession
    engine_public_key_b64: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.actors.port}"

    def hook_url(self, channel: str, connector_id: str) -> str:
        return f"{self.base_url}/hooks/{channel}/{connector_id}"

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, self.base_url + path, data=body, headers=headers or {}
        ) as response:
            text = await response.read()
            try:
                return response.status, orjson.loads(text)
            except orjson.JSONDecodeError:
                return response.status, text.decode(errors="replace")

    async def push_custom(
        self, messages: list[dict[str, Any]], connector: str = "shop"
    ) -> tuple[int, Any]:
        """Messages through a custom connector, signed as an external system signs them."""
        body, headers = signed_custom_request(messages)
        return await self.request("POST", f"/hooks/custom/{connector}", body, headers)

    async def admin(self, method: str, path: str, data: object | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        body = b"" if data is None else orjson.dumps(data)
        return await self.request(method, path, body, headers)

    async def portal_call(
        self, portal: PortalStandIn, method: str, path: str, data: object | None = None
    ) -> tuple[int, Any]:
        """A signed API call as the portal makes it."""
        body = b"" if data is None else orjson.dumps(data)
        headers = portal.side.sign_request(method, path, body)
        headers["Content-Type"] = "application/json"
        return await self.request(method, path, body, headers)

    async def advance(self, seconds: float) -> None:
        """Move the engine's manual clock (hours of outage, never slept)."""
        status, body = await self.admin("POST", f"/admin/v1/clock/advance?seconds={seconds}")
        assert status == 200, body

    async def metric_reaches(
        self, sample: str, at_least: float, timeout_s: float = 20.0
    ) -> dict[str, float]:
        """Poll ``/metrics`` until ``sample`` reaches ``at_least``; fail after a deadline.
        Returns the metrics that showed it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (metrics := await self.metrics()).get(sample, 0) < at_least:
            assert loop.time() < deadline, f"{sample} stayed below {at_least}"
            await asyncio.sleep(0.01)  # a poll with a deadline, not a wait for time
        return metrics

    async def metrics(self) -> dict[str, float]:
        status, text = await self.request("GET", "/metrics")
        assert status == 200
        return parse_metric_lines(str(text))


def engine_config_data(
    data_dir: Path,
    portals: list[dict[str, Any]],
    connectors: list[dict[str, Any]],
    rules: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A test engine's config as YAML would hold it, with its rules files written."""
    rules_dir = data_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (rules or {}).items():
        (rules_dir / f"{name}.yaml").write_text(yaml.safe_dump(content))
    data: dict[str, Any] = {
        "port": 0,
        "data_dir": str(data_dir / "data"),
        "rules_dir": str(rules_dir),
        "admin_token": ADMIN_TOKEN,
        "channel_actors": 2,
        "portals": portals,
        "connectors": connectors,
    }
    data.update(overrides)
    return data


def engine_config(
    data_dir: Path,
    portals: list[dict[str, Any]],
    connectors: list[dict[str, Any]],
    rules: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> EngineConfig:
    data = engine_config_data(data_dir, portals, connectors, rules, **overrides)
    return parse_engine_config(data, "test config")


async def start_engine(config: EngineConfig, clock_start_s: float | None = None) -> RunningEngine:
    """The engine's actors in the session's Ray; ``clock_start_s`` sets a manual clock's
    start (a restart that continues a test's simulated time)."""
    key = EngineSigningKey.load_or_create(config.data_dir / "engine_ed25519.pem")
    settings = ActorSettings(
        config,
        (config.data_dir / "engine_ed25519.pem").read_bytes(),
        time.time() if clock_start_s is None else clock_start_s,
        namespace=f"test-{uuid.uuid4().hex[:10]}",
    )
    actors = EngineActors(settings)
    await actors.start()
    session = aiohttp.ClientSession()
    return RunningEngine(actors, config, session, key.public_key_b64)


async def stop_engine(engine: RunningEngine, graceful: bool = True) -> None:
    await engine.session.close()
    if graceful:
        await engine.actors.stop()
    await engine.actors.kill()
