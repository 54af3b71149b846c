"""The channel actor: one of several aiohttp servers sharing the engine's port.

Each receives webhooks for every channel (``SO_REUSEPORT`` spreads connections over the
actors), verifies and normalizes them, batches them to the portal actors and answers the
provider once they are durable. It also serves the portal and admin APIs.
"""

from __future__ import annotations

import logging

import ray
from aiohttp import web

from actors.http_app import build_app
from actors.settings import ActorSettings
from actors.view import EngineView
from actors.webhooks import WebhookIngest
from engine.clock import ManualClock
from engine.logs import configure_logging
from engine.metrics import Counters, Sample

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0


@ray.remote(num_cpus=0, max_concurrency=100_000)  # type: ignore[call-overload]
class ChannelActor:
    def __init__(self, index: int, settings: ActorSettings) -> None:
        configure_logging()
        self._index = index
        self._settings = settings
        self._clock = settings.make_clock()
        self._counters = Counters()
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> int:
        """Serve on the configured host and ``port`` (0: any free one); returns the port.

        The first channel actor binds first; the others are then given the port it got.
        ``SO_REUSEPORT`` lets them share it, while no other program can take it meanwhile.
        """
        config = self._settings.config
        self._view = EngineView(self._settings, self._clock, self._counters)
        await self._view.start()
        self._ingest = WebhookIngest(self._view)
        self._runner = web.AppRunner(
            build_app(self._view, self._ingest),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, port, reuse_port=True, backlog=2048)
        await site.start()
        bound = int(self._runner.addresses[0][1])
        log.info("channel actor %d listening on %s:%d", self._index, config.host, bound)
        return bound

    async def stop(self) -> None:
        """Stop taking requests, let running ones finish, flush what they wait for."""
        if self._runner is None:
            return
        self._ingest.accepting = False
        await self._runner.shutdown()
        await self._ingest.drain()
        await self._runner.cleanup()
        await self._view.stop()
        self._runner = None

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        return self._counters.snapshot(), {}

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)
