"""The registry actor: the portals, connectors and routing rules every other actor follows.

A Ray shell around ``engine.registry_service.RegistryService``, which holds the registry
(durably) and the rules snapshot; this actor recovers it after a crash and looks at the
rules folder every ``RULES_POLL_S``. Channel and portal actors long-poll it for newer
versions. Routing itself happens in the portal actors, each the owner of its portals'
dialogs.

After a crash Ray runs ``__init__`` again and nothing else, and an exception there would end
the actor for good (Ray 2.60): so a restarted registry actor recovers in a background task
that retries, and never raises from ``__init__``. It serves the stored registry as it was
(the config file was merged in when the engine started, and admin changes made since must
survive) and continues the rules versions where the last instance stopped, so followers
that only take newer snapshots take its first one.
"""

from __future__ import annotations

import asyncio
import logging
import os

import ray

from actors.faults import reason, restarted
from actors.settings import ActorSettings
from engine.clock import ManualClock
from engine.config import ConnectorConfig, PortalConfig
from engine.errors import UnavailableError
from engine.logs import configure_logging
from engine.metrics import Counters, Sample
from engine.rate_ledger import Consumed, RateLedger
from engine.registry import EdgeRegistry, Registry, RegistryOutline, RegistryUpdate
from engine.registry_service import LONG_POLL_S, RegistryService
from engine.routing.rules import RuleSet

log = logging.getLogger(__name__)

RULES_POLL_S = 2.0
READY_WAIT_S = 10.0
"""How long a call waits for a restarting registry actor before it is refused (503)."""
RECOVER_RETRY_MAX_S = 10.0


@ray.remote(num_cpus=0)
class RegistryActor:
    def __init__(self, settings: ActorSettings) -> None:
        configure_logging()
        self._clock = settings.make_clock()
        self._counters = Counters()
        self._ledger = RateLedger()
        self._serving = asyncio.Event()
        self._service = RegistryService(settings.config, self._counters)
        # Ray runs an async actor's __init__ on the actor's event loop (checked on 2.60).
        loop = asyncio.get_running_loop()
        if restarted():
            self._task = loop.create_task(self._recover())
        else:
            self._service.open(restarted=False)  # an error here refuses the engine's start
            self._serving.set()
            self._task = loop.create_task(self._watch_rules())

    async def _recover(self) -> None:
        """Open the store again (retrying: a restart must never end the actor), then watch."""
        delay_s = 0.5
        while True:
            try:
                self._service.open(restarted=True)
                break
            except Exception as exc:  # a loop boundary: calls get 503 until this succeeds
                log.warning(
                    "registry actor could not recover, retrying in %.1f s: %s",
                    delay_s,
                    reason(exc),
                    exc_info=True,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, RECOVER_RETRY_MAX_S)
        self._serving.set()
        log.info(
            "registry actor restarted: registry version %d, rules version %d",
            self._service.registry.version,
            self._service.rules.version,
        )
        await self._service.notify()
        await self._watch_rules()

    async def _ready(self, wait_s: float = READY_WAIT_S) -> RegistryService:
        if not self._serving.is_set():
            try:
                await asyncio.wait_for(self._serving.wait(), wait_s)
            except TimeoutError:
                raise UnavailableError("the registry actor is recovering after a restart") from None
        return self._service

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_S)
            try:
                await self._service.check_rules_folder()
            except Exception:  # a loop boundary: the watch must outlive one bad read
                log.exception("reading the routing rules failed; the rules in force stay")
                self._counters.inc("openlines_rules_reload_failed_total")

    async def ready(self) -> int:
        return (await self._ready()).registry.version

    async def ping(self) -> str:
        """``/healthz``: answers at once, refused while the actor recovers."""
        await self._ready(0)
        return "registry"

    async def pid(self) -> int:
        return os.getpid()

    async def registry(self) -> Registry:
        return (await self._ready()).registry

    async def edge_after(
        self, version: int, timeout_s: float = LONG_POLL_S
    ) -> RegistryUpdate[EdgeRegistry]:
        return await (await self._ready()).edge_after(version, timeout_s)

    async def hosted_after(
        self, host: str, version: int, timeout_s: float = LONG_POLL_S
    ) -> RegistryUpdate[Registry]:
        return await (await self._ready()).hosted_after(host, version, timeout_s)

    async def outline(self, connectors_shown: int) -> RegistryOutline:
        return (await self._ready()).registry.outline(connectors_shown)

    async def registry_after(self, version: int, timeout_s: float = LONG_POLL_S) -> Registry:
        return await (await self._ready()).registry_after(version, timeout_s)

    async def put_portal(self, portal: PortalConfig) -> int:
        return await (await self._ready()).put_portal(portal)

    async def put_connector(self, connector: ConnectorConfig) -> int:
        return await (await self._ready()).put_connector(connector)

    async def delete_connector(self, connector_id: str) -> int:
        return await (await self._ready()).delete_connector(connector_id)

    async def rules(self) -> RuleSet:
        return (await self._ready()).rules

    async def rules_after(self, version: int, timeout_s: float = LONG_POLL_S) -> RuleSet:
        return await (await self._ready()).rules_after(version, timeout_s)

    async def reload_rules(self) -> tuple[int, str | None]:
        return await (await self._ready()).reload_rules()

    async def rules_status(self) -> tuple[int, str | None]:
        return (await self._ready(0)).rules_status()

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        service = await self._ready(0)
        return self._counters.snapshot(), service.gauges()

    async def rate_exchange(self, consumed: dict[str, Consumed]) -> dict[str, float]:
        """A channel actor's report of rate limits (``engine.rate_ledger``). Kept in memory
        only: after a restart the buckets start full (docs/channels/widget.md)."""
        return self._ledger.exchange(consumed, self._clock.now())

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)
