"""The registry as a process hosts it: the portals, connectors and routing rules every other
part follows, served to them by name (``REGISTRY_CALLS``).

Plain code around ``RegistryService`` (the registry, stored, and the rules snapshot), adding
what serving it in a long-lived process needs: recovering after the process restarted,
refusing calls until then, looking at the rules folder every ``RULES_POLL_S``, the engine's
one rate ledger and its own counters. Channel actor 0 hosts it (``actors.names``,
docs/architecture.md): it calls it in-process, every other actor through Ray.

After a crash Ray runs the host actor's ``__init__`` again, and an exception there would end
the actor for good (Ray 2.60): so a restarted host recovers in a background task that
retries, and never raises from ``__init__``. It serves the stored registry as it was (the
config file was merged in when the engine started, and admin changes made since must
survive) and continues the rules versions where the last instance stopped, so followers
that only take newer snapshots take its first one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

from engine.clock import Clock
from engine.config import ConnectorConfig, EngineConfig, PortalConfig
from engine.errors import UnavailableError
from engine.metrics import Counters, Sample
from engine.rate_ledger import Consumed, RateLedger
from engine.registry import EdgeRegistry, Registry, RegistryOutline, RegistryUpdate
from engine.registry_service import LONG_POLL_S, RegistryService
from engine.routing.rules import RuleSet

log = logging.getLogger(__name__)

RULES_POLL_S = 2.0
READY_WAIT_S = 10.0
"""How long a call waits for a recovering registry before it is refused (503)."""
RECOVER_RETRY_MAX_S = 10.0


class RegistryHost:
    """Made on the event loop that serves it (its tasks start at once). On a first start
    (``restarted`` False) a store or rules that cannot be opened raise here: the engine
    refuses to start. After a restart nothing raises: calls wait, then get 503, until a
    retried recovery succeeds."""

    def __init__(self, config: EngineConfig, clock: Clock, restarted: bool) -> None:
        self._clock = clock
        self._counters = Counters()
        self._ledger = RateLedger()
        self._serving = asyncio.Event()
        self._service = RegistryService(config, self._counters)
        loop = asyncio.get_running_loop()
        if restarted:
            self._task = loop.create_task(self._recover())
        else:
            self._service.open(restarted=False)  # an error here refuses the engine's start
            self._serving.set()
            self._task = loop.create_task(self._watch_rules())

    async def _recover(self) -> None:
        """Open the store again (retrying: a restart must never end the host), then watch."""
        delay_s = 0.5
        while True:
            try:
                self._service.open(restarted=True)
                break
            except Exception as exc:  # a loop boundary: calls get 503 until this succeeds
                log.warning(
                    "the registry could not recover, retrying in %.1f s: %s",
                    delay_s,
                    exc,
                    exc_info=True,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, RECOVER_RETRY_MAX_S)
        self._serving.set()
        log.info(
            "registry recovered: registry version %d, rules version %d",
            self._service.registry.version,
            self._service.rules.version,
        )
        await self._service.notify()
        await self._watch_rules()

    async def _ready(self, wait_s: float | None = None) -> RegistryService:
        """The service once it serves: waited for up to ``wait_s`` (``READY_WAIT_S``)."""
        if not self._serving.is_set():
            try:
                wait = READY_WAIT_S if wait_s is None else wait_s
                await asyncio.wait_for(self._serving.wait(), wait)
            except TimeoutError:
                raise UnavailableError("the registry is recovering after a restart") from None
        return self._service

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_S)
            try:
                await self._service.check_rules_folder()
            except Exception:  # a loop boundary: the watch must outlive one bad read
                log.exception("reading the routing rules failed; the rules in force stay")
                self._counters.inc("openlines_rules_reload_failed_total")

    async def close(self) -> None:
        """Stop watching and close the store (tests; a host process ends with its actor)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._service.close()

    async def ready(self) -> int:
        """The registry version, once the registry serves (the engine's start waits)."""
        return (await self._ready()).registry.version

    async def ping(self) -> str:
        """``/healthz``: answers at once, refused while the registry recovers."""
        await self._ready(0)
        return "registry"

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
        """The registry's own counters and gauges: ``/metrics`` reports it as a part of its
        own (``registry``), up only while it serves."""
        service = await self._ready(0)
        return self._counters.snapshot(), service.gauges()

    async def advance_clock(self, seconds: float) -> None:
        """Nothing: the clock is its host's, which the admin API moves as a part of its own
        (moving it here too would move it twice)."""

    async def rate_exchange(self, consumed: dict[str, Consumed]) -> dict[str, float]:
        """A channel actor's report of rate limits (``engine.rate_ledger``). Kept in memory
        only: after a restart the buckets start full (docs/channels/widget.md)."""
        return self._ledger.exchange(consumed, self._clock.now())


REGISTRY_CALLS = frozenset(
    name
    for name, value in vars(RegistryHost).items()
    if not name.startswith("_") and name != "close" and inspect.iscoroutinefunction(value)
)
"""The calls other processes make of the registry, by name (``actors.channel``'s
``registry_call`` carries them to the host)."""
