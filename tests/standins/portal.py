"""A portal stand-in: a real aiohttp server on 127.0.0.1 that receives the engine's batches.

It verifies every request with the portal-side module (Ed25519 signature, HPKE opening)
exactly as a real Python portal would, records the events in arrival order, and can be
told to fail: answer an HTTP status (with ``Retry-After``) for the next N requests, or be
slow. It can also sign API calls to the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine.errors import AuthError
from engine.portal_side import PortalSide
from engine.security.keys import generate_portal_keypair


@dataclass
class ScriptedFailure:
    status: int
    retry_after: str | None = None


@dataclass
class PortalStandIn:
    portal_id: str
    private_key_b64: str
    public_key_b64: str
    license_key: str
    engine_public_key_b64: str | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    failures: list[ScriptedFailure] = field(default_factory=list)
    attempts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delay_s: float = 0.0
    url: str = ""
    now: Callable[[], float] | None = None
    """The portal's clock for checking the engine's signature times: real time unless a
    test runs the engine on a manual clock it moves by days (a messaging window)."""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None

    @classmethod
    def create(cls, portal_id: str) -> PortalStandIn:
        private, public = generate_portal_keypair()
        return cls(portal_id, private, public, license_key=f"license-{portal_id}-0123456789")

    @property
    def side(self) -> PortalSide:
        assert self.engine_public_key_b64 is not None, "set engine_public_key_b64 first"
        return PortalSide.from_b64(
            self.portal_id, self.private_key_b64, self.engine_public_key_b64, self.license_key
        )

    def portal_config(self, **overrides: Any) -> dict[str, Any]:
        """The engine-side config of this portal (a dict for YAML, JSON or a model)."""
        config: dict[str, Any] = {
            "id": self.portal_id,
            "endpoint": self.url,
            "public_key": self.public_key_b64,
            "license_key": self.license_key,
            "linger_ms": 2,
            "retry_initial_s": 0.05,
            "retry_max_s": 1.0,
            "lines": [{"id": "support"}],
        }
        config.update(overrides)
        return config

    async def start(self, port: int = 0) -> None:
        self._arrived = asyncio.Condition()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openlines", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}/openlines"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        self.attempts += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures:
            failure = self.failures.pop(0)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return web.Response(status=failure.status, text="scripted failure", headers=headers)
        try:
            now_s = self.now() if self.now is not None else None
            batch = self.side.open_delivery(request.headers, body, now_s=now_s)
        except AuthError as exc:
            self.rejected.append(str(exc))
            return web.Response(status=401, text=str(exc))
        assert self._arrived is not None
        async with self._arrived:
            self.batches.append(batch)
            self._arrived.notify_all()
        return web.Response(status=204)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch["events"]]

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"].startswith("message.")]

    def of_types(self, *prefixes: str) -> list[dict[str, Any]]:
        """Events whose type starts with one of ``prefixes`` (``"dialog."``, ``"reply."``)."""
        return [e for e in self.events if e["type"].startswith(prefixes)]

    async def wait_for(
        self, predicate: Callable[[PortalStandIn], bool], timeout_s: float = 20.0
    ) -> None:
        """Wait until ``predicate(self)`` holds; a deadline, never a fixed sleep."""
        assert self._arrived is not None
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: predicate(self)), timeout_s)

    async def wait_for_events(
        self, count: int, *prefixes: str, timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """The first ``count`` events (of these type prefixes, if given) once they arrived."""
        if not prefixes:
            await self.wait_for(lambda portal: len(portal.events) >= count, timeout_s)
            return self.events
        await self.wait_for(lambda portal: len(portal.of_types(*prefixes)) >= count, timeout_s)
        return self.of_types(*prefixes)
