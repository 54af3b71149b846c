"""The engine's HTTP app in one process, without Ray: the same handlers (``engine.web``) over
the same parts the actors wire, wired here directly (``engine.web.ports.Engine``).

Real parts only: a ``RegistryService`` on its SQLite file and the rules folder, a channel
actor's intake and hand-off, a ``MailboxHost`` with its routers delivering to a portal
stand-in, served by aiohttp on 127.0.0.1. What Ray adds (other processes, restarts) is
tested in tests/actors.
"""

from __future__ import annotations

import asyncio
import pickle
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.channel_cache import ChannelCache
from channels.base import Channel
from channels.widget.log import close_shared_logs, log_path
from channels.widget.retention import WidgetPruner, retained_widgets
from engine.api_models import EngineKeyDocument
from engine.clock import Clock, ManualClock, SystemClock
from engine.config import ConnectorConfig, EngineConfig, PortalConfig
from engine.delivery.host import MailboxHost
from engine.delivery.host_calls import HostCalls
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import NotFoundError, UnavailableError
from engine.handoff import Handoff, InProgress
from engine.metrics import Counters, Sample
from engine.polling import PollingLoop
from engine.rate_ledger import Consumed, RateLedger
from engine.registry import EdgeRegistry, Registry
from engine.registry_service import RegistryService
from engine.security.media_links import media_link_key
from engine.store.intake import IntakeStore
from engine.store.records import OutboxRecord
from engine.store.threaded import ThreadedStore
from engine.web.app import build_app
from engine.web.ports import Part, PortalServer, Registrar, Stats
from engine.web.webhooks import WebhookIngest

HOST = "portals"
"""The one server of every portal here (the actors' pool of size one)."""


class LocalPortalServer(HostCalls):
    """Every portal of the engine, served by one ``MailboxHost`` in this process: the
    portal API's calls as the portal actor answers them, and what a server adds."""

    def __init__(self, host: MailboxHost, registry: RegistryService) -> None:
        super().__init__(self._host_if_open)
        self.host = host
        self.open = True
        self._registry = registry

    async def _host_if_open(self) -> MailboxHost:
        if not self.open:
            raise UnavailableError(f"{HOST} is down")
        return self.host

    async def append(
        self, records: list[OutboxRecord], source: int, watermark: float
    ) -> list[bool]:
        return await (await self._host_if_open()).append(records, source, watermark)

    async def rules_applied(self, version: int, timeout_s: float) -> int:
        rules = self._registry.rules
        await (await self._host_if_open()).set_rules(rules)
        return rules.version

    async def ping(self) -> object:
        return (await self._host_if_open()).portal_ids

    async def stats(self) -> Stats:
        host = await self._host_if_open()
        gauges: dict[Sample, float] = {}
        for portal_id, store_gauges in (await host.gauges()).items():
            labels = (("portal", portal_id),)
            gauges[("openlines_outbox_depth", labels)] = store_gauges.outbox_depth
            gauges[("openlines_unrouted", labels)] = store_gauges.unrouted
        return host.counters.snapshot(), gauges

    async def advance_clock(self, seconds: float) -> None:
        """The clock is the engine's own, moved once by ``OneProcessEngine``."""


class LocalRegistrar:
    """The registry service; a change is applied to the portal server before it answers,
    as the portal actors follow the registry."""

    def __init__(self, service: RegistryService, engine: OneProcessEngine) -> None:
        self._service = service
        self._engine = engine

    async def put_portal(self, portal: PortalConfig) -> int:
        return await self._engine.applied(await self._service.put_portal(portal))

    async def put_connector(self, connector: ConnectorConfig) -> int:
        return await self._engine.applied(await self._service.put_connector(connector))

    async def delete_connector(self, connector_id: str) -> int:
        return await self._engine.applied(await self._service.delete_connector(connector_id))

    async def reload_rules(self) -> tuple[int, str | None]:
        return await self._service.reload_rules()

    async def rules_status(self) -> tuple[int, str | None]:
        return self._service.rules_status()

    async def registry(self) -> Registry:
        return self._service.registry

    async def ping(self) -> object:
        return self._service.registry.version

    async def stats(self) -> Stats:
        return Counters().snapshot(), self._service.gauges()

    async def advance_clock(self, seconds: float) -> None:
        """See ``LocalPortalServer.advance_clock``."""


class OneProcessEngine:
    """``engine.web.ports.Engine`` over the parts above; the clock is moved by ``advance``
    of the one channel part, as the admin API moves every actor's."""

    def __init__(self, config: EngineConfig, clock: Clock, signing_key: Ed25519PrivateKey) -> None:
        self._config = config
        self._clock = clock
        self._counters = Counters()
        self._signing_key = signing_key
        self._channels = ChannelCache(config.data_dir)
        self.service = RegistryService(config, Counters())
        self.service.open(restarted=False)
        self._registrar = LocalRegistrar(self.service, self)
        self.server: LocalPortalServer | None = None
        self.ledger = RateLedger()

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def counters(self) -> Counters:
        return self._counters

    @property
    def registry(self) -> EdgeRegistry:
        return self.service.registry.edge()

    @property
    def registrar(self) -> Registrar:
        return self._registrar

    @property
    def engine_key(self) -> dict[str, str]:
        return EngineKeyDocument.for_key(self._signing_key.public_key()).model_dump()

    @property
    def media_link_key(self) -> bytes:
        return media_link_key(self._signing_key)

    async def wait_for_version(self, version: int) -> None:
        """Changes are applied before the registrar answers (``LocalRegistrar``)."""
        assert self.registry.version >= version

    def channel(self, connector: ConnectorConfig) -> Channel:
        return self._channels.get(connector)

    async def share_usage(self, consumed: dict[str, Consumed]) -> dict[str, float]:
        """The engine's ledger, as the registry holds it."""
        return self.ledger.exchange(consumed, self._clock.now())

    def channel_of(self, connector_id: str) -> Channel:
        connector = self.registry.connectors.get(connector_id)
        if connector is None:
            raise NotFoundError(f"connector {connector_id!r} was removed")
        return self._channels.get(connector)

    def portal(self, portal_id: str) -> PortalServer:
        return self.portal_servers()[0]

    def portal_servers(self) -> list[PortalServer]:
        """The one server of every portal here."""
        assert self.server is not None
        return [cast(PortalServer, AcrossProcesses(self.server))]

    def parts(self) -> dict[str, Part]:
        assert self.server is not None
        return {"registry": self._registrar, "channel-0": ChannelPart(self), HOST: self.server}

    async def applied(self, version: int) -> int:
        assert self.server is not None
        await self.server.host.configure(list(self.service.registry.portals.values()))
        return version


class AcrossProcesses:
    """Calls as an actor call makes them: arguments and results pickled on the way, so a
    result that could not cross to another process fails here as it would in the engine."""

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._target, name)

        async def invoke(*args: Any) -> Any:
            result = await method(*pickle.loads(pickle.dumps(args)))
            return pickle.loads(pickle.dumps(result))

        return invoke


class ChannelPart:
    """The channel side itself as a part: its counters, and the engine's clock."""

    def __init__(self, engine: OneProcessEngine) -> None:
        self._engine = engine

    async def ping(self) -> object:
        return 0

    async def stats(self) -> Stats:
        return self._engine.counters.snapshot(), {}

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._engine.clock, ManualClock):
            await self._engine.clock.advance(seconds)


@dataclass
class Served:
    engine: OneProcessEngine
    server: LocalPortalServer
    app: web.Application
    url: str
    session: aiohttp.ClientSession
    intake: ThreadedStore[IntakeStore]
    handoff: Handoff
    in_progress: InProgress

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, self.url + path, data=body, headers=headers or {}
        ) as response:
            text = await response.read()
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, text.decode(errors="replace")


@asynccontextmanager
async def one_process_engine(
    config: EngineConfig, clock: ManualClock, session: aiohttp.ClientSession
) -> AsyncIterator[Served]:
    """The app served on 127.0.0.1 with every part started; all stopped on exit."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    signing_key = Ed25519PrivateKey.generate()
    engine = OneProcessEngine(config, clock, signing_key)
    host = MailboxHost(
        config.data_dir / "outbox.sqlite3",
        clock,
        HttpTransport(session, clock),
        EngineSealer(signing_key),
        engine.channel_of,
        session,
        rng=random.Random(7),
    )
    await host.set_rules(engine.service.rules)
    await host.configure(list(engine.service.registry.portals.values()))
    server = LocalPortalServer(host, engine.service)
    engine.server = server
    intake = ThreadedStore(IntakeStore(config.data_dir / "intake.sqlite3"), SystemClock())
    in_progress = InProgress(clock.now)

    async def hand_to(destination: str, records: list[OutboxRecord], mark: float) -> list[bool]:
        return await server.append(records, 0, mark)

    handoff = Handoff(intake, hand_to, config.handoff_batch_max, engine.counters, in_progress.floor)
    await handoff.load()
    handing = asyncio.create_task(handoff.run())
    ingest = WebhookIngest(engine, intake, handoff, in_progress, session)
    polling = PollingLoop(
        lambda: engine.registry,
        engine.channel,
        intake,
        handoff,
        in_progress,
        session,
        clock,
        engine.counters,
        config.portal_pool_size,
    )
    polling_task = asyncio.create_task(polling.run())
    pruner = WidgetPruner(log_path(config.data_dir), clock, engine.counters)
    pruning = asyncio.create_task(
        pruner.run(
            lambda: retained_widgets(
                engine.service.registry.connectors.values(),
                engine.channel,
                host.open_dialog_keys(),
            )
        )
    )
    app = build_app(engine, ingest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Served(
            engine,
            server,
            app,
            f"http://127.0.0.1:{port}",
            session,
            intake,
            handoff,
            in_progress,
        )
    finally:
        await runner.cleanup()
        handing.cancel()
        polling_task.cancel()
        pruning.cancel()
        await asyncio.gather(handing, polling_task, pruning, return_exceptions=True)
        await intake.close()
        await host.close()
        await engine.service.close()
        await close_shared_logs()
