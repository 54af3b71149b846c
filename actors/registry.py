"""The registry actor: the portals, connectors and routing rules every other actor follows.

It holds the authoritative registry (durably, in its own SQLite file) and the rules
snapshot read from the rules folder (reloaded when a file changes; a bad edit keeps the
rules in force and is reported). Channel and portal actors long-poll it for newer versions.
Routing itself happens in the portal actors, each the owner of its portals' dialogs.

After a crash Ray runs ``__init__`` again and nothing else, and an exception there would end
the actor for good (Ray 2.60): so a restarted registry actor recovers in a background task
that retries, and never raises from ``__init__``. It serves the stored registry as it was
(the config file was merged in when the engine started, and admin changes made since must
survive) and continues the rules versions where the last instance stopped, so followers
that only take newer snapshots take its first one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import ray

from actors.faults import reason, restarted
from actors.settings import ActorSettings
from engine.clock import ManualClock
from engine.config import ConnectorConfig, PortalConfig
from engine.errors import ConfigError, UnavailableError
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
READY_WAIT_S = 10.0
"""How long a call waits for a restarting registry actor before it is refused (503)."""
RECOVER_RETRY_MAX_S = 10.0


@ray.remote(num_cpus=0)
class RegistryActor:
    def __init__(self, settings: ActorSettings) -> None:
        configure_logging()
        self._settings = settings
        self._clock = settings.make_clock()
        self._counters = Counters()
        self._changed = asyncio.Condition()
        self._serving = asyncio.Event()
        self._registry = Registry()
        self._holder: RulesHolder | None = None
        self._rules_load_error: str | None = None
        self._published_rules_version = 0
        self._version_path = settings.data_dir / "rules_version"
        # Ray runs an async actor's __init__ on the actor's event loop (checked on 2.60).
        loop = asyncio.get_running_loop()
        if restarted():
            self._task = loop.create_task(self._recover())
        else:
            self._open(restarted=False)  # an error here refuses the engine's start
            self._task = loop.create_task(self._watch_rules())

    def _open(self, restarted: bool) -> None:
        config = self._settings.config
        self._store = RegistryStore(config.data_dir / "registry.sqlite3")
        self._thread = StoreThread(self._store, "registry")
        stored = self._store.load_registry()
        if restarted:
            self._registry = stored
            self._published_rules_version = read_rules_version(self._version_path)
            try:
                self._open_rules(self._published_rules_version + 1)
            except ConfigError as exc:  # serve the registry; report the rules (see _rules)
                self._rules_load_error = str(exc)
                log.error("routing rules not loaded after a restart: %s", exc)
        else:
            self._registry = self._merge_config(stored, config.portals, config.connectors)
            self._open_rules(1)
        self._serving.set()

    def _open_rules(self, version: int) -> None:
        holder = RulesHolder(self._settings.config.rules_dir)
        if holder.rules.version != version:
            holder.rules = dataclasses.replace(holder.rules, version=version)
        self._holder = holder
        self._rules_load_error = None
        self._rules_published()

    def _rules_published(self) -> None:
        self._published_rules_version = self._rules.version
        write_rules_version(self._version_path, self._published_rules_version)

    async def _recover(self) -> None:
        """Open the store again (retrying: a restart must never end the actor), then watch."""
        delay_s = 0.5
        while True:
            try:
                self._open(restarted=True)
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
        log.info(
            "registry actor restarted: registry version %d, rules version %d",
            self._registry.version,
            self._rules.version,
        )
        async with self._changed:
            self._changed.notify_all()
        await self._watch_rules()

    async def _ready(self, wait_s: float = READY_WAIT_S) -> None:
        if self._serving.is_set():
            return
        try:
            await asyncio.wait_for(self._serving.wait(), wait_s)
        except TimeoutError:
            raise UnavailableError("the registry actor is recovering after a restart") from None

    @property
    def _rules(self) -> RuleSet:
        """The snapshot in force. A restart that found the rules folder invalid has none:
        it offers an empty one at the last published version, which followers that hold
        rules ignore (not newer), until the folder validates again."""
        if self._holder is not None:
            return self._holder.rules
        return RuleSet(version=self._published_rules_version)

    @property
    def _rules_error(self) -> str | None:
        return self._holder.error if self._holder is not None else self._rules_load_error

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
        await self._ready()
        return self._registry.version

    async def ping(self) -> str:
        """``/healthz``: answers at once, refused while the actor recovers."""
        await self._ready(0)
        return "registry"

    async def pid(self) -> int:
        return os.getpid()

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(RULES_POLL_S)
            try:
                if self._holder is None:
                    await self._thread.call(self._open_rules, self._published_rules_version + 1)
                    log.info("routing rules version %d", self._rules.version)
                    async with self._changed:
                        self._changed.notify_all()
                else:
                    await self.reload_rules(force=False)
            except ConfigError as exc:  # still invalid after a restart: reported, kept trying
                if str(exc) != self._rules_load_error:
                    log.error("routing rules still not loaded: %s", exc)
                self._rules_load_error = str(exc)
            except Exception:  # a loop boundary: the watch must outlive one bad read
                log.exception("reading the routing rules failed; the rules in force stay")
                self._counters.inc("openlines_rules_reload_failed_total")

    # -- registry ------------------------------------------------------------------------

    async def registry(self) -> Registry:
        await self._ready()
        return self._registry

    async def registry_after(self, version: int, timeout_s: float = LONG_POLL_S) -> Registry:
        """The registry once it is newer than ``version`` (or the current one on timeout)."""
        await self._ready()
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
        await self._ready()
        return await self._replace(self._registry.with_portal(portal))

    async def put_connector(self, connector: ConnectorConfig) -> int:
        await self._ready()
        return await self._replace(self._registry.with_connector(connector))

    async def delete_connector(self, connector_id: str) -> int:
        await self._ready()
        return await self._replace(self._registry.without_connector(connector_id))

    # -- rules ---------------------------------------------------------------------------

    async def rules(self) -> RuleSet:
        await self._ready()
        return self._rules

    async def rules_after(self, version: int, timeout_s: float = LONG_POLL_S) -> RuleSet:
        """The rules once newer than ``version`` (or the ones in force on timeout)."""
        await self._ready()
        await self._wait_for(lambda: self._rules.version > version, timeout_s)
        return self._rules

    async def reload_rules(self, force: bool = True) -> tuple[int, str | None]:
        """Reload rules now; returns the version in force and the last error, if any."""
        await self._ready()
        if self._holder is None:
            return self._rules.version, self._rules_error
        changed = await self._thread.call(self._holder.reload, force)
        if changed:
            await self._thread.call(self._rules_published)
            log.info("routing rules version %d", self._rules.version)
            async with self._changed:
                self._changed.notify_all()
        elif self._rules_error:
            log.error("routing rules not reloaded, old rules stay: %s", self._rules_error)
            self._counters.inc("openlines_rules_reload_failed_total")
        return self._rules.version, self._rules_error

    async def rules_status(self) -> tuple[int, str | None]:
        await self._ready(0)
        return self._rules.version, self._rules_error

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        await self._ready(0)
        gauges: dict[Sample, float] = {
            ("openlines_rules_version", ()): self._rules.version,
            ("openlines_rules_error", ()): 1.0 if self._rules_error else 0.0,
        }
        return self._counters.snapshot(), gauges

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)


def read_rules_version(path: Path) -> int:
    """The last rules version a registry actor published here (0: none yet)."""
    try:
        return int(path.read_text(encoding="ascii").strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_rules_version(path: Path, version: int) -> None:
    """Replace the file whole: a crash leaves the old number or the new, never half."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(str(version), encoding="ascii")
    os.replace(temporary, path)
