"""The engine as a channel actor's HTTP handlers see it (``engine.web.ports.Engine``),
implemented with Ray: a followed copy of the registry, and the other actors as ``Remote``
objects whose calls raise the engine's own errors. The registry is one of them, except in
its host (channel actor 0), which passes it in: the same calls, made in-process."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import ray

from actors.channel_cache import ChannelCache
from actors.faults import reason
from actors.names import REGISTRY, channel_actor
from actors.portal import portal_actor
from actors.remote import PortalRemote, Remote, remote_registry
from actors.settings import ActorSettings
from channels.base import Channel
from engine.clock import Clock
from engine.config import ConnectorConfig, EngineConfig
from engine.delivery.host_calls import API_CALLS
from engine.errors import EngineError
from engine.memory import release_freed_memory
from engine.metrics import Counters
from engine.placement import host_name, host_names
from engine.rate_ledger import Consumed
from engine.registry import EdgeRegistry
from engine.registry_host import RegistryHost
from engine.security.media_links import media_link_key
from engine.web.ports import Part, PortalServer, Registrar

log = logging.getLogger(__name__)

REGISTRY_RETRY_S = 1.0
SPREAD_WAIT_S = 5.0
"""How long an admin change waits for the other channel actors to serve it."""


class EngineView:
    def __init__(
        self,
        settings: ActorSettings,
        clock: Clock,
        counters: Counters,
        local_registry: RegistryHost | None = None,
    ) -> None:
        """``local_registry``: the registry, when this process hosts it."""
        self._settings = settings
        self._clock = clock
        self._counters = counters
        self._registry = EdgeRegistry()
        self._registry_host = (
            local_registry if local_registry is not None else remote_registry(settings.namespace)
        )
        self._engine_key = settings.engine_key_document()
        self._media_link_key = media_link_key(settings.signing_key())
        self._servers: dict[str, Remote] = {}
        self._channels = ChannelCache(settings.config.data_dir)
        self._channel_actors: dict[str, Remote] = {}
        self._follower: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def config(self) -> EngineConfig:
        return self._settings.config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def counters(self) -> Counters:
        return self._counters

    @property
    def registry(self) -> EdgeRegistry:
        return self._registry

    @property
    def registrar(self) -> Registrar:
        return self._registry_host

    @property
    def engine_key(self) -> dict[str, str]:
        return self._engine_key

    @property
    def media_link_key(self) -> bytes:
        return self._media_link_key

    async def start(self) -> None:
        update = await self._registry_host.edge_after(-1, 0.0)
        self._registry = update.applied_to(EdgeRegistry(-1))
        release_freed_memory()  # what unpickling the registry's copy left behind
        self._follower = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)

    async def _follow(self) -> None:
        """Newer registries, for ever; while the registry is down (its host restarting) this
        copy keeps serving: webhooks and API calls for known portals never wait for it."""
        down = False
        while True:
            try:
                update = await self._registry_host.edge_after(self._registry.version)
                registry = update.applied_to(self._registry)
            except Exception as exc:  # a loop boundary: the copy in hand keeps serving
                if not down:
                    log.warning("registry changes wait, the registry: %s", reason(exc))
                    self._counters.inc("openlines_loop_errors_total", loop="registry_follow")
                    down = True
                await asyncio.sleep(REGISTRY_RETRY_S)
                continue
            if down:
                log.info("registry back; registry version %d", registry.version)
                down = False
            if registry.version <= self._registry.version:
                continue
            async with self._changed:
                self._registry = registry
                self._changed.notify_all()
            del registry, update
            release_freed_memory()  # the version replaced, and what reading it took

    async def wait_for_version(self, version: int) -> None:
        """Once every channel actor serves ``version``: an admin change answered here then
        holds for a webhook that reaches any of them. One that is down or still behind
        after ``SPREAD_WAIT_S`` (its follower waits out a failed long poll) is not waited
        for longer: it takes the version from the registry when it can."""
        await self.has_version(version)
        await asyncio.gather(
            *(self._reached(actor, version) for actor in self._channel_parts().values())
        )

    async def has_version(self, version: int) -> None:
        """Once this process's copy of the registry is at least ``version``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._registry.version >= version)

    async def _reached(self, actor: Remote, version: int) -> None:
        try:
            await asyncio.wait_for(actor.has_version(version), SPREAD_WAIT_S)
        except (TimeoutError, EngineError) as exc:
            log.warning("a channel actor is not at registry version %d yet: %s", version, exc)

    def _channel_parts(self) -> dict[str, Remote]:
        if not self._channel_actors:
            self._channel_actors = {
                channel_actor(i): Remote(
                    ray.get_actor(channel_actor(i), namespace=self._settings.namespace)
                )
                for i in range(self.config.channel_actors)
            }
        return self._channel_actors

    def channel(self, connector: ConnectorConfig) -> Channel:
        return self._channels.get(connector)

    async def share_usage(self, consumed: dict[str, Consumed]) -> dict[str, float]:
        """The registry holds the engine's one ``RateLedger``: one call per report."""
        levels: dict[str, float] = await self._registry_host.rate_exchange(consumed)
        return levels

    def portal(self, portal_id: str) -> PortalServer:
        return self.server(host_name(portal_id, self.config.portal_pool_size))

    def server(self, name: str) -> PortalServer:
        """The portal actor called ``name``, created if it does not exist yet."""
        remote = self._servers.get(name)
        if remote is None:
            remote = PortalRemote(portal_actor(name, self._settings), API_CALLS)
            self._servers[name] = remote
        return cast(PortalServer, remote)

    def portal_servers(self) -> list[PortalServer]:
        names = host_names(list(self._registry.portals), self.config.portal_pool_size)
        return [self.server(name) for name in names]

    def parts(self) -> dict[str, Part]:
        """The registry, the channel actors and the portal actors of known portals."""
        names = host_names(list(self._registry.portals), self.config.portal_pool_size)
        parts: dict[str, object] = {REGISTRY: self._registry_host, **self._channel_parts()}
        parts.update({name: self.server(name) for name in names})
        return cast(dict[str, Part], parts)
