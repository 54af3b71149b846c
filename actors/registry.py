"""The registry actor: the portals, connectors and routing rules every other actor follows.

It holds the authoritative registry (durably, in its own SQLite file) and the rules
snapshot read from the rules folder (reloaded when a file changes; a bad edit keeps the
rules in force and is reported). Channel and portal actors long-poll it for newer versions.
Routing itself happens in the portal actors, each the owner of its portals' dialogs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import ray

from actors.settings import ActorSettings
from engine.clock import ManualClock
from engine.config import ConnectorConfig, PortalConfig
from engine.logs import configure_logging
from engine.metrics import Counters, Sample
from engine.registry import Registry, check_references
from engine.routing.rules import RuleSet
from engine.routing.rules_holder import RulesHolder
from engine.store.sqlite_registry import RegistryStore
from engine.store.threaded import StoreThread

log = logging.getLogger(__name__)

RULES_POLL_S = 2.0
LONG_POLL_S = 30.0


@ray.remote(num_cpus=0)
class RegistryActor:
    def __init__(self, settings: ActorSettings) -> None:
        configure_logging()
        config = settings.config
        self._clock = settings.make_clock()
        self._counters = Counters()
        self._store = RegistryStore(config.data_dir / "registry.sqlite3")
        self._rules = RulesHolder(config.rules_dir)
        self._thread = StoreThread(self._store, "registry")
        self._registry = self._merge_config(
            self._store.load_registry(), config.portals, config.connectors
        )
        self._changed = asyncio.Condition()
        self._rules_task: asyncio.Task[None] | None = None

    def _merge_config(
        self,
        stored: Registry,
        portals: Sequence[PortalConfig],
        connectors: Sequence[ConnectorConfig],
    ) -> Registry:
        """Entries of the config file replace stored ones with the same id."""
        merged_portals = {**stored.portals, **{p.id: p for p in portals}}
        merged_connectors = {**stored.connectors, **{c.id: c for c in connectors}}
        check_references(merged_portals, merged_connectors)
        if merged_portals == stored.portals and merged_connectors == stored.connectors:
            return stored
        registry = Registry(stored.version + 1, merged_portals, merged_connectors)
        self._store.save_registry(registry)
        return registry

    async def ready(self) -> int:
        if self._rules_task is None:
            self._rules_task = asyncio.create_task(self._watch_rules())
        return self._registry.version

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_S)
            try:
                await self.reload_rules(force=False)
            except Exception:  # a loop boundary: the watch must outlive one bad read
                log.exception("reading the routing rules failed; the rules in force stay")
                self._counters.inc("openlines_rules_reload_failed_total")

    # -- registry ------------------------------------------------------------------------

    async def registry(self) -> Registry:
        return self._registry

    async def registry_after(self, version: int, timeout_s: float = LONG_POLL_S) -> Registry:
        """The registry once it is newer than ``version`` (or the current one on timeout)."""
        await self._wait_for(lambda: self._registry.version > version, timeout_s)
        return self._registry

    async def _wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout_s)
            except TimeoutError:
                pass

    async def _replace(self, registry: Registry) -> int:
        await self._thread.call(self._store.save_registry, registry)
        async with self._changed:
            self._registry = registry
            self._changed.notify_all()
        log.info("registry version %d", registry.version)
        return registry.version

    async def put_portal(self, portal: PortalConfig) -> int:
        return await self._replace(self._registry.with_portal(portal))

    async def put_connector(self, connector: ConnectorConfig) -> int:
        return await self._replace(self._registry.with_connector(connector))

    async def delete_connector(self, connector_id: str) -> int:
        return await self._replace(self._registry.without_connector(connector_id))

    # -- rules ---------------------------------------------------------------------------

    async def rules(self) -> RuleSet:
        return self._rules.rules

    async def rules_after(self, version: int, timeout_s: float = LONG_POLL_S) -> RuleSet:
        """The rules once newer than ``version`` (or the ones in force on timeout)."""
        await self._wait_for(lambda: self._rules.rules.version > version, timeout_s)
        return self._rules.rules

    async def reload_rules(self, force: bool = True) -> tuple[int, str | None]:
        """Reload rules now; returns the version in force and the last error, if any."""
        changed = await self._thread.call(self._rules.reload, force)
        if changed:
            log.info("routing rules version %d", self._rules.rules.version)
            async with self._changed:
                self._changed.notify_all()
        elif self._rules.error:
            log.error("routing rules not reloaded, old rules stay: %s", self._rules.error)
            self._counters.inc("openlines_rules_reload_failed_total")
        return self._rules.rules.version, self._rules.error

    async def rules_status(self) -> tuple[int, str | None]:
        return self._rules.rules.version, self._rules.error

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        gauges: dict[Sample, float] = {
            ("openlines_rules_version", ()): self._rules.rules.version,
            ("openlines_rules_error", ()): 1.0 if self._rules.error else 0.0,
        }
        return self._counters.snapshot(), gauges

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)
