"""The portal actor: a thin Ray shell around ``MailboxHost``.

One per portal by default, or one per pool slot; the host name decides which portals it
serves (``engine.placement``) and names its SQLite file, so a restarted actor finds its
outbox and its dialogs. It owns its portals' dialogs (routing) and their delivery, and
follows the registry actor for its portals, their connectors and the routing rules.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import aiohttp
import ray

from actors.channel_cache import ChannelCache
from actors.names import REGISTRY
from actors.settings import ActorSettings
from channels.base import Channel
from engine.clock import ManualClock
from engine.delivery.host import MailboxHost
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import NotFoundError
from engine.logs import configure_logging
from engine.metrics import Sample
from engine.models import ReplyRequest
from engine.placement import host_name
from engine.registry import Registry
from engine.routing.portal_router import PortalRouter
from engine.routing.rules import RuleSet
from engine.routing.state import OperatorStatus
from engine.store.records import DeadLetter, OutboxRecord

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


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
        self._rules_version = 0
        self._rules_applied = asyncio.Condition()

    async def start(self) -> str:
        """Open the outbox, take the current registry and begin delivering."""
        if self._host is not None:
            await self._started.wait()
            return self._name
        key = self._settings.signing_key()
        registry = ray.get_actor(REGISTRY, namespace=self._settings.namespace)
        self._session = aiohttp.ClientSession()
        self._host = MailboxHost(
            self._settings.data_dir / "outbox" / f"{self._name}.sqlite3",
            self._clock,
            HttpTransport(self._session, self._clock),
            EngineSealer(key),
            self._channel_for,
            self._session,
        )
        await self._apply_rules(await registry.rules.remote())
        await self._apply(await registry.registry.remote())
        self._tasks = [
            asyncio.create_task(self._follow_registry(registry)),
            asyncio.create_task(self._follow_rules(registry)),
            asyncio.create_task(self._prune_regularly()),
        ]
        # What start-up loaded (registry, boards of open dialogs) lives as long as the
        # actor: out of the collector's sight, full collections stop pausing delivery.
        gc.freeze()
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

    async def _apply_rules(self, rules: RuleSet) -> None:
        assert self._host is not None
        await self._host.set_rules(rules)
        async with self._rules_applied:
            self._rules_version = rules.version
            self._rules_applied.notify_all()

    async def rules_applied(self, version: int, timeout_s: float) -> int:
        """Once this actor routes with rules ``version`` or newer (or on timeout): the
        admin API answers a reload only when every portal actor has taken it."""
        await self._started.wait()
        async with self._rules_applied:
            try:
                await asyncio.wait_for(
                    self._rules_applied.wait_for(lambda: self._rules_version >= version),
                    timeout_s,
                )
            except TimeoutError:
                pass
        return self._rules_version

    async def _follow_registry(self, registry_actor: Any) -> None:
        while True:
            try:
                registry = await registry_actor.registry_after.remote(self._registry.version)
            except ray.exceptions.RayError as exc:  # registry restarting: try again shortly
                log.warning("portal actor %s: registry poll failed: %s", self._name, exc)
                await asyncio.sleep(1.0)
                continue
            if registry.version != self._registry.version:
                await self._apply(registry)

    async def _follow_rules(self, registry_actor: Any) -> None:
        while True:
            try:
                rules = await registry_actor.rules_after.remote(self._rules_version)
            except ray.exceptions.RayError as exc:  # registry restarting: try again shortly
                log.warning("portal actor %s: rules poll failed: %s", self._name, exc)
                await asyncio.sleep(1.0)
                continue
            if rules.version != self._rules_version:
                await self._apply_rules(rules)

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

    async def _router(self, portal_id: str, request_id: str | None) -> PortalRouter:
        """The portal's router, after refusing a replayed API request id (admin calls,
        authenticated by the bearer token, have none)."""
        await self._started.wait()
        assert self._host is not None
        if request_id is not None:
            await self._host.check_request(portal_id, request_id)
        return self._host.router(portal_id)

    async def check_request(self, portal_id: str, request_id: str) -> None:
        await self._router(portal_id, request_id)

    async def reply(
        self, portal_id: str, request_id: str, dialog_id: str, request: ReplyRequest
    ) -> str:
        router = await self._router(portal_id, request_id)
        return await router.reply(dialog_id, request, request.operator_id)

    async def dialog(self, portal_id: str, request_id: str, dialog_id: str) -> dict[str, Any]:
        router = await self._router(portal_id, request_id)
        return (await router.dialog(dialog_id)).view().model_dump(mode="json")

    async def dialog_action(
        self, portal_id: str, request_id: str, dialog_id: str, action: str, operator_id: str
    ) -> dict[str, Any]:
        """accept, skip or finish; the dialog as it stands afterwards."""
        router = await self._router(portal_id, request_id)
        if action == "accept":
            dialog = await router.accept(dialog_id, operator_id)
        elif action == "skip":
            dialog = await router.skip(dialog_id, operator_id)
        else:
            dialog = await router.finish(dialog_id, operator_id or None)
        return dialog.view().model_dump(mode="json")

    async def set_operator(
        self,
        portal_id: str,
        request_id: str,
        operator_id: str,
        status: OperatorStatus | None,
        working: bool | None,
    ) -> dict[str, Any]:
        router = await self._router(portal_id, request_id)
        operator = await router.set_operator(operator_id, status, working)
        return {"operator_id": operator_id, "status": operator.status, "working": operator.working}

    async def line_operators(
        self, portal_id: str, request_id: str, line_id: str
    ) -> list[dict[str, object]]:
        router = await self._router(portal_id, request_id)
        return router.operators(line_id)

    async def explain(
        self, portal_id: str, request_id: str | None, dialog_id: str, limit: int
    ) -> dict[str, object]:
        router = await self._router(portal_id, request_id)
        return await router.explain(dialog_id, limit)

    async def set_responsible(
        self,
        portal_id: str,
        request_id: str | None,
        connector_id: str,
        customer_id: str,
        operator_id: str | None,
    ) -> None:
        router = await self._router(portal_id, request_id)
        await router.set_responsible(connector_id, customer_id, operator_id)

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
        for portal_id, (counts, online) in self._host.routing_gauges().items():
            gauges[("openlines_operators_online", (("portal", portal_id),))] = online
            for (line_id, state), count in counts.items():
                by_state = (("line", line_id), ("portal", portal_id), ("state", state))
                gauges[("openlines_dialogs", by_state)] = count
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
