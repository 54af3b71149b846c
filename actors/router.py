"""The router actor: dialogs, operator assignment, rules reloads, and the registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import ray

from actors.settings import ActorSettings
from engine.clock import ManualClock
from engine.config import ConnectorConfig, PortalConfig
from engine.logs import configure_logging
from engine.metrics import Counters, Sample
from engine.models import DialogInfo
from engine.registry import Registry, check_references
from engine.routing.dialog_store import DialogStore
from engine.routing.router import DialogRequest, Router
from engine.store.threaded import StoreThread

log = logging.getLogger(__name__)

RULES_POLL_S = 2.0


@ray.remote(num_cpus=0)
class RouterActor:
    def __init__(self, settings: ActorSettings) -> None:
        configure_logging()
        config = settings.config
        self._clock = settings.make_clock()
        self._counters = Counters()
        self._store = DialogStore(config.data_dir / "router.sqlite3")
        self._router = Router(self._store, config.rules_dir, self._clock)
        self._thread = StoreThread(self._store, "router")
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
            await self.reload_rules(force=False)

    # -- registry ------------------------------------------------------------------------

    async def registry(self) -> Registry:
        return self._registry

    async def registry_after(self, version: int, timeout_s: float = 30.0) -> Registry:
        """The registry once it is newer than ``version`` (or the current one on timeout)."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._registry.version > version), timeout_s
                )
            except TimeoutError:
                pass
        return self._registry

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

    # -- dialogs and rules -----------------------------------------------------------------

    async def resolve(self, requests: Sequence[DialogRequest]) -> list[DialogInfo]:
        dialogs = await self._thread.call(self._router.resolve, requests)
        opened = sum(1 for dialog in dialogs if dialog.is_new)
        if opened:
            self._counters.inc("openlines_dialogs_opened_total", opened)
        return dialogs

    async def dialog(self, dialog_id: str) -> DialogInfo | None:
        return await self._thread.call(self._router.dialog, dialog_id)

    async def reload_rules(self, force: bool = True) -> tuple[int, str | None]:
        """Reload rules now; returns the version in force and the last error, if any."""
        changed = await self._thread.call(self._router.reload_rules, force)
        if changed:
            log.info("routing rules version %d", self._router.rules.version)
        elif self._router.rules_error:
            log.error("routing rules not reloaded, old rules stay: %s", self._router.rules_error)
        return self._router.rules.version, self._router.rules_error

    async def rules_status(self) -> tuple[int, str | None]:
        return self._router.rules.version, self._router.rules_error

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        return self._counters.snapshot(), {}

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)
