"""The authoritative registry and rules snapshot: what the registry serves.

Plain code over a SQLite file and the rules folder, so the admin API's handlers can be run
against it without Ray (``engine.web``); ``engine.registry_host`` adds what the process that
hosts it needs: recovering after a restart, watching the rules folder.

The registry is stored durably; every change is a new version. The rules snapshot is read
from the rules folder; a bad edit keeps the rules in force and is reported. Followers (the
channel and portal actors) long-poll for newer versions of either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.config import ConnectorConfig, EngineConfig, PortalConfig
from engine.errors import ConfigError
from engine.memory import release_freed_memory
from engine.metrics import Counters, Sample
from engine.registry import (
    EdgeRegistry,
    Registry,
    RegistryChange,
    RegistryUpdate,
    check_references,
)
from engine.routing.rules import RuleSet
from engine.routing.rules_holder import RulesHolder
from engine.store.sqlite_registry import RegistryStore
from engine.store.threaded import StoreThread

log = logging.getLogger(__name__)

LONG_POLL_S = 30.0
CHANGES_KEPT = 1000
"""Changes remembered for followers (``engine.registry``); one further behind, or one
following a registry that restarted since, gets a whole copy."""


class RegistryService:
    """Opened once (``open``): from the config file on a first start, or as stored after a
    restart, when it continues the rules versions where the last instance stopped, so
    followers that only take newer snapshots take its first one."""

    def __init__(self, config: EngineConfig, counters: Counters) -> None:
        self._config = config
        self._counters = counters
        self._changed = asyncio.Condition()
        self._registry = Registry()
        self._holder: RulesHolder | None = None
        self._rules_load_error: str | None = None
        self._published_rules_version = 0
        self._version_path = config.data_dir / "rules_version"
        self._thread: StoreThread[RegistryStore] | None = None
        self._changes: deque[RegistryChange] = deque(maxlen=CHANGES_KEPT)
        self._writing = asyncio.Lock()
        """Admin changes one at a time: each is checked against, and numbered after, the
        version before it."""
        self._parts: dict[str, Registry] = {}
        """Each portal actor's part of the registry, made once per version (``hosted_after``)."""
        self._parts_version = -1
        self._edge = EdgeRegistry(-1)
        """The channel actors' copy of the registry, made once per version (``edge_after``)."""

    def open(self, restarted: bool) -> None:
        """Open the store and read the rules. On a first start a ``ConfigError`` (bad config
        or rules) refuses the engine's start; after a restart bad rules are only reported."""
        store = RegistryStore(self._config.data_dir / "registry.sqlite3")
        self._thread = StoreThread(store, "registry")
        stored = store.load_registry()
        if restarted:
            self._registry = stored
            self._published_rules_version = read_rules_version(self._version_path)
            try:
                self._open_rules(self._published_rules_version + 1)
            except ConfigError as exc:  # serve the registry; report the rules (see rules)
                self._rules_load_error = str(exc)
                log.error("routing rules not loaded after a restart: %s", exc)
        else:
            self._registry = self._merge_config(store, stored)
            self._open_rules(1)
        # The registry has them now; a second copy of 10,000 portals would stay for nothing.
        self._config = self._config.model_copy(update={"portals": (), "connectors": ()})
        release_freed_memory()

    @property
    def _store_thread(self) -> StoreThread[RegistryStore]:
        if self._thread is None:
            raise RuntimeError("the registry service is not open")
        return self._thread

    def _open_rules(self, version: int) -> None:
        holder = RulesHolder(self._config.rules_dir)
        if holder.rules.version != version:
            holder.rules = dataclasses.replace(holder.rules, version=version)
        self._holder = holder
        self._rules_load_error = None
        self._rules_published()

    def _rules_published(self) -> None:
        self._published_rules_version = self.rules.version
        write_rules_version(self._version_path, self._published_rules_version)

    def _merge_config(self, store: RegistryStore, stored: Registry) -> Registry:
        """Entries of the config file replace stored ones with the same id."""
        portals: Sequence[PortalConfig] = self._config.portals
        connectors: Sequence[ConnectorConfig] = self._config.connectors
        merged_portals = {**stored.portals, **{p.id: p for p in portals}}
        merged_connectors = {**stored.connectors, **{c.id: c for c in connectors}}
        check_references(merged_portals, merged_connectors)
        if merged_portals == stored.portals and merged_connectors == stored.connectors:
            return stored
        registry = Registry(stored.version + 1, merged_portals, merged_connectors)
        store.save_registry(registry)
        return registry

    async def notify(self) -> None:
        """Wake the long polls: something they wait for may have changed."""
        async with self._changed:
            self._changed.notify_all()

    # -- registry ------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return self._registry

    async def registry_after(self, version: int, timeout_s: float = LONG_POLL_S) -> Registry:
        """The registry once it is newer than ``version`` (or the current one on timeout)."""
        await self._wait_for(lambda: self._registry.version > version, timeout_s)
        return self._registry

    async def edge_after(
        self, version: int, timeout_s: float = LONG_POLL_S
    ) -> RegistryUpdate[EdgeRegistry]:
        """What takes a channel actor's copy (``Registry.edge``) at ``version`` to the
        newest, once there is a newer one (or on timeout)."""
        registry = await self.registry_after(version, timeout_s)
        changes = self._changes_after(version, registry.version)
        if changes is not None:
            return RegistryUpdate(registry.version, changes)
        if self._edge.version != registry.version:
            self._edge = registry.edge()
        return RegistryUpdate(registry.version, whole=self._edge)

    async def hosted_after(
        self, host: str, version: int, timeout_s: float = LONG_POLL_S
    ) -> RegistryUpdate[Registry]:
        """The same for portal actor ``host``'s part of the registry: its portals and
        their connectors (an actor with no portals gets an empty part)."""
        registry = await self.registry_after(version, timeout_s)
        pool_size = self._config.portal_pool_size
        changes = self._changes_after(version, registry.version)
        if changes is not None:
            return RegistryUpdate(
                registry.version, tuple(c.for_host(host, pool_size) for c in changes)
            )
        if self._parts_version != registry.version:
            self._parts = registry.by_host(pool_size)
            self._parts_version = registry.version
            release_freed_memory()  # the parts of the version before
        return RegistryUpdate(
            registry.version, whole=self._parts.get(host) or Registry(registry.version)
        )

    def _changes_after(self, version: int, current: int) -> tuple[RegistryChange, ...] | None:
        """The changes from ``version`` to ``current``, or None when they are not all kept."""
        if version >= current:
            return ()
        kept = self._changes
        if version < 0 or not kept or kept[0].version > version + 1 or kept[-1].version < current:
            return None
        return tuple(change for change in kept if version < change.version <= current)

    async def _wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout_s)
            except TimeoutError:
                pass

    async def _change(self, make: Callable[[Registry], RegistryChange]) -> int:
        """Make the next version's change from the current registry, store it, serve it."""
        async with self._writing:
            change = make(self._registry)
            registry = self._registry.checked(change)  # a ConfigError refuses it here
            thread = self._store_thread
            await thread.call(thread.store.save_change, change)
            async with self._changed:
                self._registry = registry
                self._changes.append(change)
                self._changed.notify_all()
        log.info("registry version %d", change.version)
        return change.version

    async def put_portal(self, portal: PortalConfig) -> int:
        return await self._change(lambda registry: registry.put_portal(portal))

    async def put_connector(self, connector: ConnectorConfig) -> int:
        return await self._change(lambda registry: registry.put_connector(connector))

    async def delete_connector(self, connector_id: str) -> int:
        return await self._change(lambda registry: registry.remove_connector(connector_id))

    # -- rules ---------------------------------------------------------------------------

    @property
    def rules(self) -> RuleSet:
        """The snapshot in force. A restart that found the rules folder invalid has none:
        it offers an empty one at the last published version, which followers that hold
        rules ignore (not newer), until the folder validates again."""
        if self._holder is not None:
            return self._holder.rules
        return RuleSet(version=self._published_rules_version)

    @property
    def rules_error(self) -> str | None:
        return self._holder.error if self._holder is not None else self._rules_load_error

    async def rules_after(self, version: int, timeout_s: float = LONG_POLL_S) -> RuleSet:
        """The rules once newer than ``version`` (or the ones in force on timeout)."""
        await self._wait_for(lambda: self.rules.version > version, timeout_s)
        return self.rules

    async def reload_rules(self, force: bool = True) -> tuple[int, str | None]:
        """Reload rules now; returns the version in force and the last error, if any."""
        if self._holder is None:
            return self.rules.version, self.rules_error
        changed = await self._store_thread.call(self._holder.reload, force)
        if changed:
            await self._store_thread.call(self._rules_published)
            log.info("routing rules version %d", self.rules.version)
            await self.notify()
        elif self.rules_error:
            log.error("routing rules not reloaded, old rules stay: %s", self.rules_error)
            self._counters.inc("openlines_rules_reload_failed_total")
        return self.rules.version, self.rules_error

    async def check_rules_folder(self) -> None:
        """One look at the rules folder: reload what changed, or, after a restart that found
        it invalid, try it again. Called regularly by ``engine.registry_host``."""
        if self._holder is not None:
            await self.reload_rules(force=False)
            return
        try:
            await self._store_thread.call(self._open_rules, self._published_rules_version + 1)
        except ConfigError as exc:  # still invalid after a restart: reported, kept trying
            if str(exc) != self._rules_load_error:
                log.error("routing rules still not loaded: %s", exc)
            self._rules_load_error = str(exc)
            return
        log.info("routing rules version %d", self.rules.version)
        await self.notify()

    def rules_status(self) -> tuple[int, str | None]:
        return self.rules.version, self.rules_error

    def gauges(self) -> dict[Sample, float]:
        return {
            ("openlines_rules_version", ()): self.rules.version,
            ("openlines_rules_error", ()): 1.0 if self.rules_error else 0.0,
        }

    async def close(self) -> None:
        if self._thread is not None:
            await self._thread.close()
            self._thread = None


def read_rules_version(path: Path) -> int:
    """The last rules version a registry published here (0: none yet)."""
    try:
        return int(path.read_text(encoding="ascii").strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_rules_version(path: Path, version: int) -> None:
    """Replace the file whole: a crash leaves the old number or the new, never half."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(str(version), encoding="ascii")
    os.replace(temporary, path)
