"""What a channel actor knows of the engine: the registry copy and handles to other actors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.channel_cache import ChannelCache
from actors.faults import reason
from actors.names import REGISTRY, channel_actor
from actors.portal import portal_actor
from actors.settings import ActorSettings
from channels.base import Channel
from engine.clock import Clock
from engine.config import ConnectorConfig
from engine.errors import EngineError
from engine.metrics import Counters
from engine.placement import host_name, host_names
from engine.registry import Registry

log = logging.getLogger(__name__)

REGISTRY_RETRY_S = 1.0


def cause_of(exc: BaseException) -> BaseException:
    """The exception an actor raised, unwrapped from Ray's ``RayTaskError``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class EngineView:
    def __init__(self, settings: ActorSettings, clock: Clock, counters: Counters) -> None:
        self.settings = settings
        self.config = settings.config
        self.clock = clock
        self.counters = counters
        self.registry = Registry()
        self.registry_actor = ray.get_actor(REGISTRY, namespace=settings.namespace)
        self._hosts: dict[str, Any] = {}
        self._channels = ChannelCache()
        self._channel_actors: list[Any] = []
        self._follower: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        self.registry = await self.registry_actor.registry.remote()
        self._follower = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)

    async def _follow(self) -> None:
        """Newer registries, for ever; while the registry actor is down (restarting) this
        copy keeps serving: webhooks and API calls for known portals never wait for it."""
        down = False
        while True:
            try:
                registry = await self.registry_actor.registry_after.remote(self.registry.version)
            except ray.exceptions.RayError as exc:
                if not down:
                    log.warning(
                        "registry actor unavailable, registry changes wait: %s", reason(exc)
                    )
                    down = True
                await asyncio.sleep(REGISTRY_RETRY_S)
                continue
            if down:
                log.info("registry actor back; registry version %d", registry.version)
                down = False
            if registry.version <= self.registry.version:
                continue
            async with self._changed:
                self.registry = registry
                self._changed.notify_all()

    async def wait_for_version(self, version: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.registry.version >= version)

    def channel(self, connector: ConnectorConfig) -> Channel:
        """The connector's channel plug-in."""
        return self._channels.get(connector)

    def host(self, portal_id: str) -> Any:
        """The portal actor serving ``portal_id``."""
        return self.host_by_name(host_name(portal_id, self.config.portal_pool_size))

    def host_by_name(self, name: str) -> Any:
        handle = self._hosts.get(name)
        if handle is None:
            handle = portal_actor(name, self.settings)
            self._hosts[name] = handle
        return handle

    def channel_actors(self) -> list[Any]:
        if not self._channel_actors:
            self._channel_actors = [
                ray.get_actor(channel_actor(i), namespace=self.settings.namespace)
                for i in range(self.config.channel_actors)
            ]
        return self._channel_actors

    def portal_hosts(self) -> list[Any]:
        """The portal actors of the registry's portals."""
        names = host_names(list(self.registry.portals), self.config.portal_pool_size)
        return [self.host_by_name(name) for name in names]

    def all_actors(self) -> list[Any]:
        """The registry actor, the channel actors and the portal actors of known portals."""
        return list(self.named_actors().values())

    def named_actors(self) -> dict[str, Any]:
        """The same, by actor name: what ``/healthz`` and ``/metrics`` ask and report."""
        names = host_names(list(self.registry.portals), self.config.portal_pool_size)
        return {
            REGISTRY: self.registry_actor,
            **{channel_actor(i): actor for i, actor in enumerate(self.channel_actors())},
            **{name: self.host_by_name(name) for name in names},
        }


async def call(ref: Any) -> Any:
    """Await an actor call, re-raising the actor's own ``EngineError`` unwrapped."""
    try:
        return await ref
    except ray.exceptions.RayTaskError as exc:
        cause = cause_of(exc)
        if isinstance(cause, EngineError):
            raise cause from None
        raise
