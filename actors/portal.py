"""The portal actor: a thin Ray shell around ``MailboxHost``.

One per portal by default, or one per pool slot; the host name decides which portals it
serves (``engine.placement``) and names its SQLite file, so a restarted actor finds its
outbox. It follows the router's registry to learn its portals and their connectors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import ray

from actors.channel_cache import ChannelCache
from actors.names import ROUTER
from actors.settings import ActorSettings
from channels.base import Channel
from engine.clock import ManualClock
from engine.delivery.host import MailboxHost
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import NotFoundError
from engine.logs import configure_logging
from engine.metrics import Sample
from engine.models import DialogInfo, ReplyRequest
from engine.placement import host_name
from engine.registry import Registry
from engine.routing.router import DialogRequest
from engine.store.records import DeadLetter, OutboxRecord

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


class RouterResolver:
    """Dialogs from the router actor, for the mailboxes."""

    def __init__(self, router: Any) -> None:
        self._router = router

    async def resolve(self, requests: Sequence[DialogRequest]) -> list[DialogInfo]:
        result: list[DialogInfo] = await self._router.resolve.remote(list(requests))
        return result


@ray.remote(num_cpus=0, max_concurrency=1000)  # type: ignore[call-overload]
class PortalActor:
    def __init__(self, name: str, settings: ActorSettings) -> None:
        configure_logging()
        self._name = name
        self._settings = settings
        self._clock = settings.make_clock()
        self._registry = Registry()
        self._channels = ChannelCache()
        self._host: MailboxHost | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()

    async def start(self) -> str:
        """Open the outbox, take the current registry and begin delivering."""
        if self._host is not None:
            await self._started.wait()
            return self._name
        key = self._settings.signing_key()
        router = ray.get_actor(ROUTER, namespace=self._settings.namespace)
        self._session = aiohttp.ClientSession()
        self._host = MailboxHost(
            self._settings.data_dir / "outbox" / f"{self._name}.sqlite3",
            self._clock,
            HttpTransport(self._session, self._clock),
            RouterResolver(router),
            EngineSealer(key),
            self._channel_for,
            self._session,
        )
        await self._apply(await router.registry.remote())
        self._tasks = [
            asyncio.create_task(self._follow_registry(router)),
            asyncio.create_task(self._prune_regularly()),
        ]
        self._started.set()
        return self._name

    def _channel_for(self, connector_id: str) -> Channel:
        connector = self._registry.connectors.get(connector_id)
        if connector is None:
            raise NotFoundError(f"connector {connector_id!r} was removed")
        return self._channels.get(connector)

    async def _apply(self, registry: Registry) -> None:
        """Serve this actor's portals; keep only their part of the registry (memory)."""
        pool = self._settings.config.portal_pool_size
        portals = {
            portal.id: portal
            for portal in registry.portals.values()
            if host_name(portal.id, pool) == self._name
        }
        connectors = {
            connector.id: connector
            for connector in registry.connectors.values()
            if connector.portal in portals
        }
        self._registry = Registry(registry.version, portals, connectors)
        assert self._host is not None
        await self._host.configure(list(portals.values()))

    async def _follow_registry(self, router: Any) -> None:
        while True:
            try:
                registry = await router.registry_after.remote(self._registry.version)
            except ray.exceptions.RayError as exc:  # router restarting: try again shortly
                log.warning("portal actor %s: registry poll failed: %s", self._name, exc)
                await asyncio.sleep(1.0)
                continue
            if registry.version != self._registry.version:
                await self._apply(registry)

    async def _prune_regularly(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            assert self._host is not None
            await self._host.prune()

    # -- calls from channel actors ---------------------------------------------------------

    async def append(self, records: list[OutboxRecord]) -> list[bool]:
        await self._started.wait()
        assert self._host is not None
        return await self._host.append(records)

    async def check_request(self, portal_id: str, request_id: str) -> None:
        await self._started.wait()
        assert self._host is not None
        await self._host.check_request(portal_id, request_id)

    async def submit_reply(
        self, portal_id: str, request_id: str, dialog: DialogInfo, request: ReplyRequest
    ) -> str:
        await self._started.wait()
        assert self._host is not None
        return await self._host.submit_reply(portal_id, request_id, dialog, request)

    async def dead_letters(
        self, portal_id: str, request_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]:
        await self._started.wait()
        assert self._host is not None
        return await self._host.dead_letters(portal_id, request_id, limit, after_event_id)

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        await self._started.wait()
        assert self._host is not None
        gauges: dict[Sample, float] = {}
        for portal_id, (depth, dead) in (await self._host.gauges()).items():
            labels = (("portal", portal_id),)
            gauges[("openlines_outbox_depth", labels)] = depth
            gauges[("openlines_dead_letters", labels)] = dead
        return self._host.counters.snapshot(), gauges

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)

    async def shutdown(self) -> None:
        """Stop delivering; everything not delivered stays in the outbox."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._host is not None:
            await self._host.close()
            await self._session.close()
            self._host = None


def portal_actor(name: str, settings: ActorSettings) -> Any:
    """The portal actor called ``name``, created and started if it does not exist yet.

    Both the supervisor (at start-up, for every known portal) and channel actors (for a
    portal added through the admin API a moment ago) come here; Ray's ``get_if_exists``
    makes the creation race-free and ``start`` is idempotent.
    """
    handle = PortalActor.options(  # type: ignore[attr-defined]
        name=name, namespace=settings.namespace, get_if_exists=True
    ).remote(name, settings)
    handle.start.remote()
    return handle
