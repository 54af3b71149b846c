"""Starting and stopping the engine's actors, in the order their dependencies need."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.channel import ChannelActor
from actors.names import REGISTRY, channel_actor
from actors.portal import portal_actor
from actors.registry import RegistryActor
from actors.settings import ActorSettings
from engine.placement import host_names
from engine.registry import Registry

log = logging.getLogger(__name__)


class EngineActors:
    def __init__(self, settings: ActorSettings) -> None:
        self.settings = settings
        self.registry_actor: Any = None
        self.hosts: dict[str, Any] = {}
        self.channels: list[Any] = []
        self.port = settings.config.port
        """The HTTP port, once started (the configured one, or the one got for port 0)."""

    async def start(self) -> Registry:
        """Registry actor first (registry and rules), then portal actors, then the port."""
        config = self.settings.config
        shared = self.settings.without_registry()
        self.registry_actor = RegistryActor.options(  # type: ignore[attr-defined]
            name=REGISTRY, namespace=self.settings.namespace
        ).remote(self.settings)
        await self.registry_actor.ready.remote()
        registry: Registry = await self.registry_actor.registry.remote()
        self.settings = (
            shared  # the registry actor has the config's portals; no one else needs them
        )
        for name in host_names(list(registry.portals), config.portal_pool_size):
            self.hosts[name] = portal_actor(name, shared)
        await asyncio.gather(*(host.start.remote() for host in self.hosts.values()))
        self.channels = [
            ChannelActor.options(  # type: ignore[attr-defined]
                name=channel_actor(index), namespace=self.settings.namespace
            ).remote(index, shared)
            for index in range(config.channel_actors)
        ]
        first, *others = self.channels
        self.port = await first.start.remote(config.port)
        await asyncio.gather(*(actor.start.remote(self.port) for actor in others))
        return registry

    async def stop(self) -> None:
        """Stop intake first, then delivery: everything acknowledged is in an outbox."""
        await asyncio.gather(
            *(actor.stop.remote() for actor in self.channels), return_exceptions=True
        )
        hosts = await self.portal_actors()
        await asyncio.gather(*(h.shutdown.remote() for h in hosts), return_exceptions=True)

    async def portal_actors(self) -> list[Any]:
        """Every portal actor, including those channel actors started for new portals."""
        registry: Registry = await self.registry_actor.registry.remote()
        names = set(self.hosts) | set(
            host_names(list(registry.portals), self.settings.config.portal_pool_size)
        )
        handles = []
        for name in sorted(names):
            try:
                handles.append(ray.get_actor(name, namespace=self.settings.namespace))
            except ValueError:
                continue
        return handles

    async def kill(self) -> None:
        """End every actor at once (tests; the driver's own exit does this in production)."""
        for handle in [*await self.portal_actors(), *self.channels, self.registry_actor]:
            ray.kill(handle, no_restart=True)
