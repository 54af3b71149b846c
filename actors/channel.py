"""The channel actor: one of several aiohttp servers sharing the engine's port.

Each receives webhooks for every channel (``SO_REUSEPORT`` spreads connections over the
actors), verifies and normalizes them, stores them in its own intake (one SQLite file per
actor, group commit) and answers the provider; then hands them to the portal actors in
batches (``engine.handoff``). It also serves the portal and admin APIs. Actor 0 also runs
the polling connectors' loop (``engine.polling``), its cursors in its intake, and hosts the
registry (``engine.registry_host``, ``actors.names.REGISTRY_HOST``): it uses it in-process,
every other actor calls it here (``registry_call``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

import aiohttp
import ray
from aiohttp import web

from actors.faults import reason, restarted
from actors.names import REGISTRY_HOST, REGISTRY_HOST_INDEX, channel_actor
from actors.settings import ActorSettings
from actors.view import EngineView
from actors.widget_log import join
from channels.widget.log import close_shared_logs
from engine.clock import ManualClock, SystemClock
from engine.delivery.host import SEEN_RETENTION_S
from engine.errors import NotFoundError, PartFailedError, UnavailableError
from engine.handoff import Handoff, InProgress
from engine.logs import configure_logging
from engine.metrics import Counters, Sample
from engine.polling import POLLING_ACTOR, PollingLoop
from engine.registry_host import REGISTRY_CALLS, RegistryHost
from engine.store.intake import IntakeStore
from engine.store.records import OutboxRecord
from engine.store.threaded import ThreadedStore
from engine.web.app import build_app
from engine.web.webhooks import WebhookIngest

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0
PRUNE_EVERY_S = 3600.0
DRAIN_TIMEOUT_S = 10.0
"""A clean stop hands off what the intake holds for this long; the rest waits on disk."""


@ray.remote(num_cpus=0, max_concurrency=100_000)  # type: ignore[call-overload]
class ChannelActor:
    """Restarted by Ray after a crash (``actors.faults``): only ``__init__`` runs then, so a
    restarted actor starts itself on the port it had (kept beside its intake), reopens its
    intake and hands off what waits there. ``__init__`` never raises after a restart (Ray
    2.60 would end the actor for good); on a first start, actor 0's registry that cannot
    open raises there and so refuses the engine's start."""

    def __init__(self, index: int, settings: ActorSettings) -> None:
        configure_logging()
        self._index = index
        self._clock = settings.make_clock()
        self._registry: RegistryHost | None = None
        if index == REGISTRY_HOST_INDEX:
            # Ray runs an async actor's __init__ on the actor's event loop (checked on 2.60),
            # where the host starts its tasks; the clock is the one this actor moves.
            self._registry = RegistryHost(settings.config, self._clock, restarted())
        self._settings = settings.without_registry()  # the registry has the config's portals
        self._counters = Counters()
        self._runner: web.AppRunner | None = None
        self._serving = asyncio.Event()
        self._port_file = settings.data_dir / "intake" / f"channel-{index}.port"
        self._session: aiohttp.ClientSession | None = None
        if restarted():
            # Runs on the actor's event loop (Ray 2.60 async actors): schedule the restart.
            self._restarter = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        delay_s = 0.5
        while self._runner is None:
            try:
                port = int(self._port_file.read_text(encoding="utf-8"))
                await self.start(port)
                log.info("channel actor %d restarted on port %d", self._index, port)
            except Exception as exc:  # a loop boundary: the port refuses until it starts
                log.warning("channel actor %d could not restart: %s", self._index, reason(exc))
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, 10.0)

    async def start(self, port: int) -> int:
        """Serve on the configured host and ``port`` (0: any free one); returns the port.

        The first channel actor binds first; the others are then given the port it got.
        ``SO_REUSEPORT`` lets them share it, while no other program can take it meanwhile.
        """
        if self._runner is not None:
            return int(self._runner.addresses[0][1])
        config = self._settings.config
        join(self._settings)  # the other nodes' widget logs, on a cluster
        self._view = EngineView(self._settings, self._clock, self._counters, self._registry)
        await self._view.start()
        # Group commit waits on real time, never on a manual clock: it is no timer of the
        # domain, and a test's webhook must be answered without the test moving time.
        self._intake = ThreadedStore(
            IntakeStore(config.data_dir / "intake" / f"channel-{self._index}.sqlite3"),
            SystemClock(),
            "intake",
        )
        in_progress = InProgress(self._clock.now)
        self._handoff = Handoff(
            self._intake, self._hand_to, config.handoff_batch_max, self._counters, in_progress.floor
        )
        await self._handoff.load()  # what a previous run acknowledged and did not hand off
        self._handoff_task = asyncio.create_task(self._handoff.run())
        self._prune_task = asyncio.create_task(self._prune_regularly())
        # Outbound calls of this actor: keys for asynchronous verification, polling.
        self._session = aiohttp.ClientSession()
        self._ingest = WebhookIngest(
            self._view, self._intake, self._handoff, in_progress, self._session
        )
        self._tasks = [self._handoff_task, self._prune_task]
        if self._index == POLLING_ACTOR:  # every polling loop runs here, exactly once
            polling = PollingLoop(
                lambda: self._view.registry,
                self._view.channel,
                self._intake,
                self._handoff,
                in_progress,
                self._session,
                self._clock,
                self._counters,
                config.portal_pool_size,
            )
            self._tasks.append(asyncio.create_task(polling.run()))
        runner = web.AppRunner(
            build_app(self._view, self._ingest),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, config.host, port, reuse_port=True, backlog=2048)
        await site.start()
        self._runner = runner
        bound = int(runner.addresses[0][1])
        self._port_file.write_text(str(bound), encoding="utf-8")
        self._serving.set()
        # What start-up loaded (Ray, the registry, the channels) lives as long as the actor:
        # out of the collector's sight, a full collection no longer stops the webhooks'
        # answers for 40 ms (measured in the closed loop; actors.portal does the same).
        gc.freeze()
        log.info("channel actor %d listening on %s:%d", self._index, config.host, bound)
        return bound

    async def ping(self) -> int:
        """Health: answers only while this actor serves the port."""
        if not self._serving.is_set():
            raise UnavailableError(f"channel actor {self._index} is not serving yet")
        return self._index

    async def pid(self) -> int:
        return os.getpid()

    async def registry_call(self, name: str, *args: Any) -> Any:
        """One of the registry's calls (``engine.registry_host.REGISTRY_CALLS``), by name,
        for the other actors: served by actor 0 only. Asked of another, it is a wiring bug
        (a caller that did not find the host through ``actors.names``), refused as such."""
        if self._registry is None:
            raise PartFailedError(
                f"{channel_actor(self._index)} hosts no registry: "
                f"the registry is on {REGISTRY_HOST} (actors.names.REGISTRY_HOST)"
            )
        if name not in REGISTRY_CALLS:
            raise NotFoundError(f"no registry call {name!r}")
        return await getattr(self._registry, name)(*args)

    async def has_version(self, version: int) -> None:
        """Once this actor serves registry ``version`` (an admin change waits for every
        channel actor, ``EngineView.wait_for_version``)."""
        if not self._serving.is_set():
            raise UnavailableError(f"channel actor {self._index} is not serving yet")
        await self._view.has_version(version)

    async def _prune_regularly(self) -> None:
        """Forget channel event ids after the providers' retry horizon (Telegram: 24 h)."""
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            try:
                cutoff = self._clock.now() - SEEN_RETENTION_S
                await self._intake.call(self._intake.store.prune_seen, cutoff)
            except Exception:  # a loop boundary: pruning again next time is enough
                log.exception("channel actor %d: pruning the intake failed", self._index)
                self._counters.inc("openlines_loop_errors_total", loop="prune")

    async def _hand_to(
        self, destination: str, records: list[OutboxRecord], watermark: float
    ) -> list[bool]:
        return await self._view.server(destination).append(records, self._index, watermark)

    async def watermark(self, destination: str) -> float:
        """Asked by a portal actor whose routing waits on this actor (``engine.handoff``);
        refused (so waited for) until a restarted actor has read its intake again."""
        handoff: Handoff | None = getattr(self, "_handoff", None)
        if handoff is None:
            raise UnavailableError(f"channel actor {self._index} has not opened its intake yet")
        return handoff.watermark(destination)

    async def stop(self) -> None:
        """Stop taking requests, let running ones finish, hand off what the intake holds."""
        if self._runner is None:
            return
        self._ingest.accepting = False
        await self._runner.shutdown()
        await self._runner.cleanup()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        left = await self._handoff.drain(DRAIN_TIMEOUT_S)
        if left:
            log.warning("channel actor %d: %d records stay in the intake", self._index, left)
        await self._intake.close()
        await close_shared_logs()
        await self._view.stop()
        self._serving.clear()
        self._runner = None

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        if not self._serving.is_set():
            raise UnavailableError(f"channel actor {self._index} is not serving yet")
        return self._counters.snapshot(), {}

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)
