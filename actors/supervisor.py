"""Starting and stopping the engine's actors, in the order their dependencies need.

Every actor restarts after a crash (``actors.faults.RESTARTS``) and starts itself again, so
nothing here watches them. Stopping must finish whatever has died: each call has a deadline,
and an actor that does not answer costs one warning line, never the rest of the shutdown.

Stopping finds the actors by their names in the engine's namespace, so a process other than
the one that started them can stop them: on its own Ray node the engine's driver hands over
to a keeper without Ray once the actors are up, and the keeper stops them through a short
driver of its own (``actors.keeper``, docs/architecture.md "Ray's processes").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from actors.channel import ChannelActor
from actors.faults import RESTARTS, reason
from actors.names import REGISTRY_CARRIER, channel_actor
from actors.portal import portal_actor
from actors.settings import ActorSettings
from actors.widget_log import spread_over_nodes, start_widget_logs
from engine.placement import host_names
from engine.registry import RegistryOutline

log = logging.getLogger(__name__)

CHANNEL_STOP_TIMEOUT_S = 20.0
"""A channel actor's stop lets requests in flight finish and flushes what they wait for."""
PORTAL_STOP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 45.0
"""The whole stop's deadline (``stop_within``)."""
PORTAL_ACTOR_PREFIXES = ("portal-", "pool-")
"""Names ``engine.placement`` gives portal actors."""


class ActorHandles:
    """The engine's actors as handles, and how they are stopped."""

    def __init__(self, namespace: str, detached: bool) -> None:
        self.namespace = namespace
        self.detached = detached
        """Every actor outlives the process that starts it (portal actors always do): the
        driver of an engine with its own Ray node hands over to a keeper without Ray."""
        self.hosts: dict[str, Any] = {}
        self.channels: list[Any] = []
        self.widget_logs: list[Any] = []
        """One per node on a cluster of several (``actors.widget_log``); none on one."""

    @classmethod
    def found(cls, namespace: str, channel_actors: int) -> ActorHandles:
        """The detached actors of an engine another process started, by their names, to
        stop them (``actors.keeper``). Only an engine on its own node is detached, and its
        node has one machine: no widget log actors."""
        actors = cls(namespace, detached=True)
        found = (_named(channel_actor(index), namespace) for index in range(channel_actors))
        actors.channels = [handle for handle in found if handle is not None]
        return actors

    async def stop(self) -> None:
        """Stop intake first, then delivery: everything acknowledged is in an outbox.

        Never raises for an actor that is dead, restarting or stuck: each is asked with a
        deadline, its failure logged in one line, and the shutdown goes on. Detached actors
        (portal actors, and every actor when ``detached``) are ended here once they have
        closed their files.
        """
        await self._each(
            "channel actor",
            {channel_actor(i): actor for i, actor in enumerate(self.channels)},
            lambda actor: actor.stop.remote(),
            CHANNEL_STOP_TIMEOUT_S,
        )
        hosts = await self.portal_actors()
        await self._each(
            "portal actor", hosts, lambda host: host.shutdown.remote(), PORTAL_STOP_TIMEOUT_S
        )
        ended = [*hosts.values(), *self.widget_logs]
        if self.detached:
            ended += self.channels
        for handle in ended:
            ray.kill(handle, no_restart=True)

    async def _each(
        self,
        kind: str,
        actors: dict[str, Any],
        stop: Callable[[Any], Awaitable[object]],
        timeout_s: float,
    ) -> None:
        async def one(name: str, actor: Any) -> None:
            try:
                await asyncio.wait_for(stop(actor), timeout_s)
            except TimeoutError:
                log.warning("%s %s did not stop within %.0f s", kind, name, timeout_s)
            except ray.exceptions.RayError as exc:
                log.warning("%s %s could not be stopped: %s", kind, name, reason(exc))

        await asyncio.gather(*(one(name, actor) for name, actor in actors.items()))

    async def portal_actors(self) -> dict[str, Any]:
        """Every portal actor by name, including those channel actors started for new
        portals; found without the registry, which may be down."""
        found = await asyncio.to_thread(self._listed_portal_actors)  # lookups block
        for name, handle in self.hosts.items():
            found.setdefault(name, handle)
        return dict(sorted(found.items()))

    def _listed_portal_actors(self) -> dict[str, Any]:
        namespace = self.namespace
        found: dict[str, Any] = {}
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name = entry["name"]
            if entry["namespace"] != namespace or not name.startswith(PORTAL_ACTOR_PREFIXES):
                continue
            try:
                found[name] = ray.get_actor(name, namespace=namespace)
            except ValueError:  # ended meanwhile
                continue
        return found

    async def kill(self) -> None:
        """End every actor at once (tests; the driver's own exit does this in production,
        except for portal actors, which ``stop`` ends)."""
        hosts = await self.portal_actors()
        for handle in [*hosts.values(), *self.channels, *self.widget_logs]:
            ray.kill(handle, no_restart=True)


class EngineActors(ActorHandles):
    """Starts the engine's actors from its settings."""

    def __init__(self, settings: ActorSettings, detached: bool = False) -> None:
        super().__init__(settings.namespace, detached)
        self.settings = settings
        self.port = settings.config.port
        """The HTTP port, once started (the configured one, or the one got for port 0)."""

    async def start(self, connectors_shown: int = 0) -> RegistryOutline:
        """Channel actor 0 first (it hosts the registry and rules, ``actors.names``), then
        portal actors, then the port and the other channel actors."""
        config = self.settings.config
        # On a cluster, each node's widget log for the others (docs/channels/widget.md);
        # the channel actors' settings say where they are.
        settings, self.widget_logs = start_widget_logs(self.settings)
        shared = settings.without_registry()  # only the registry reads the config's portals
        # A restarted channel actor starts serving again by itself (actors.channel);
        # max_task_retries=0: a call cut off by a death is never repeated blindly.
        self.channels = [self._channel_actor(0, settings)]
        registry = getattr(self.channels[0], REGISTRY_CARRIER)  # its calls, by name
        await registry.remote("ready")
        # Only now: had another engine been running in this namespace, creating channel
        # actor 0 would have failed above instead of ending its portal actors.
        await asyncio.to_thread(self._end_leftover_portal_actors)
        outline: RegistryOutline = await registry.remote("outline", connectors_shown)
        self.settings = shared  # the registry has the config's portals; no one else needs them
        for name in host_names(list(outline.portal_ids), config.portal_pool_size):
            self.hosts[name] = portal_actor(name, shared)
        await asyncio.gather(*(host.start.remote() for host in self.hosts.values()))
        self.port = await self.channels[0].start.remote(config.port)
        others = [self._channel_actor(i, shared) for i in range(1, config.channel_actors)]
        self.channels.extend(others)
        await asyncio.gather(*(actor.start.remote(self.port) for actor in others))
        return outline

    def _channel_actor(self, index: int, settings: ActorSettings) -> Any:
        return ChannelActor.options(  # type: ignore[attr-defined]
            name=channel_actor(index),
            namespace=settings.namespace,
            **spread_over_nodes(settings, index),
            **({"lifetime": "detached"} if self.detached else {}),
            **RESTARTS,
        ).remote(index, settings)

    def _end_leftover_portal_actors(self) -> None:
        """Portal actors are detached: after the driver of an engine that joined a cluster
        was killed, they outlive it. They hold the old settings; end them so the new ones
        take their names (and their SQLite files)."""
        for name, handle in self._listed_portal_actors().items():
            log.warning("ending portal actor %s left by an earlier run", name)
            ray.kill(handle, no_restart=True)


def _named(name: str, namespace: str) -> Any:
    """The named actor, or None (with a warning line) if it is not there."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        log.warning("actor %s is not running", name)
        return None


async def stop_within(actors: ActorHandles, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Stop every actor that can be stopped; whatever has died costs a warning line each
    (``ActorHandles.stop``), never the exit code."""
    try:
        await asyncio.wait_for(actors.stop(), timeout_s)
    except TimeoutError:
        # Every acknowledged message is already in an outbox; only delivery in flight is
        # cut short, and it is retried after the next start.
        log.error("actors did not stop within %.0f s; stopping Ray anyway", timeout_s)
