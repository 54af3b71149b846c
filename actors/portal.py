"""The portal actor: a thin Ray shell around ``MailboxHost``.

One per portal by default, or one per pool slot; the host name decides which portals it
serves (``engine.placement``) and names its SQLite file, so a restarted actor finds its
outbox and its dialogs. It owns its portals' dialogs (routing) and their delivery, and
follows the registry for its portals, their connectors and the routing rules.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import ray

from actors.channel_cache import ChannelCache
from actors.faults import RESTARTS, reason, restarted, unavailable
from actors.names import channel_actor
from actors.remote import remote_registry
from actors.settings import ActorSettings
from actors.widget_log import join
from channels.base import Channel
from channels.widget.log import close_shared_logs, log_path, stamp_with
from channels.widget.retention import RetainedWidget, WidgetPruner, retained_widgets
from engine.clock import ManualClock
from engine.delivery.host import MailboxHost
from engine.delivery.host_calls import API_CALLS, HostCalls
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import EngineError, NotFoundError, UnavailableError
from engine.handoff import Watermarks
from engine.logs import configure_logging
from engine.memory import release_freed_memory
from engine.metrics import Sample
from engine.registry import Registry, RegistryUpdate
from engine.registry_host import RegistryHost
from engine.routing.rules import RuleSet
from engine.store.records import unpack_records

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
SLEEP_CHECK_S = 60.0
"""How often (engine clock) quiet portals are looked for and put to sleep again
(``MailboxHost.sleep_quiet``)."""
CONNECTIONS = 100
"""The HTTP session's connections (aiohttp's default), and the deliveries in flight at once
for all the actor's portals: the scheduler then never queues a POST inside the session,
where its timeout would run while it waits."""
READY_WAIT_S = 10.0
"""How long a call waits for a (re)starting portal actor before it is refused (503)."""
START_RETRY_MAX_S = 10.0
REGISTRY_RETRY_S = 1.0
APPEND_RETRIES = 3
"""Ray repeats an append cut off by the actor's death on the restarted actor: appends are
idempotent (de-duplicated on the channel's own ids), so the caller waits out a restart
instead of failing. Ray counts a repeat that finds the actor still restarting as another
failure (2.60), hence more than one; a batch that keeps killing the actor is refused."""


@ray.remote(num_cpus=0, max_concurrency=1000)  # type: ignore[call-overload]
class PortalActor:
    """Starts itself: on creation and, after a crash, when Ray runs ``__init__`` again (the
    only thing it runs). Until it serves, calls wait up to ``READY_WAIT_S`` and are then
    refused with ``UnavailableError`` (503); ``__init__`` never raises, since an exception
    there would end the actor for good (Ray 2.60)."""

    def __init__(self, name: str, settings: ActorSettings) -> None:
        configure_logging()
        self._name = name
        self._settings = settings
        self._clock = settings.make_clock()
        self._registry = Registry()
        self._channels = ChannelCache(settings.config.data_dir)
        self._host: MailboxHost | None = None
        self._calls = HostCalls(self._ready)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._start_error: str | None = None
        self._stopped = False
        self._rules_version = 0
        self._rules_applied = asyncio.Condition()
        self._restarted = restarted()
        # Ray runs an async actor's __init__ on the actor's event loop (checked on 2.60), so
        # the start is scheduled here: timers and delivery resume without waiting for a call.
        self._starter = asyncio.get_running_loop().create_task(self._start_until_up())

    async def _start_until_up(self) -> None:
        delay_s = 0.5
        while not self._stopped:
            try:
                await self._open()
            except Exception as exc:  # a loop boundary: calls get 503 until a start succeeds
                self._start_error = reason(exc)
                log.warning(
                    "portal actor %s could not start, retrying in %.1f s: %s",
                    self._name,
                    delay_s,
                    self._start_error,
                    exc_info=not unavailable(exc),
                )
                self._first_attempt.set()
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, START_RETRY_MAX_S)
                continue
            self._start_error = None
            self._started.set()
            self._first_attempt.set()
            if self._restarted:
                log.info("portal actor %s restarted and serving", self._name)
            return

    async def _open(self) -> None:
        """Open the outbox, take the current registry and rules, begin delivering."""
        registry = remote_registry(self._settings.namespace)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS))
        self._host = MailboxHost(
            self._settings.data_dir / "outbox" / f"{self._name}.sqlite3",
            self._clock,
            HttpTransport(self._session, self._clock),
            EngineSealer(self._settings.signing_key()),
            self._channel_for,
            self._session,
            watermarks=Watermarks(self._settings.config.channel_actors, self._watermark_of),
            max_in_flight=CONNECTIONS,
        )
        # The widget log's retention, for this actor's portals' widgets: it alone knows
        # which of their dialogs are open (docs/channels/widget.md, "Retention").
        elsewhere = join(self._settings)  # the other nodes' widget logs, on a cluster
        widget_log = log_path(self._settings.config.data_dir)
        stamp_with(widget_log, self._clock)  # the replies this actor appends
        widget_pruner = WidgetPruner(
            widget_log, self._clock, self._host.counters, elsewhere=lambda: elsewhere
        )
        try:
            await self._apply_rules(await registry.rules())
            update = await registry.hosted_after(self._name, -1, 0.0)
            await self._apply(update.applied_to(Registry(-1)))
        except BaseException:
            await self._close()
            raise
        self._tasks = [
            asyncio.create_task(self._follow_registry(registry)),
            asyncio.create_task(self._follow_rules(registry)),
            # Pruning paces itself on real time (its cut-offs are on the engine's clock);
            # whether a portal was quiet long enough is the engine's clock's to say.
            asyncio.create_task(
                self._every(asyncio.sleep, PRUNE_EVERY_S, "prune", lambda host: host.prune())
            ),
            asyncio.create_task(
                self._every(
                    self._clock.sleep, SLEEP_CHECK_S, "sleep_quiet", lambda h: h.sleep_quiet()
                )
            ),
            asyncio.create_task(widget_pruner.run(self._widgets_to_prune)),
        ]
        # What start-up loaded (registry, boards of open dialogs) lives as long as the
        # actor: out of the collector's sight, full collections stop pausing delivery.
        gc.freeze()

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        host, self._host = self._host, None
        if host is not None:
            await host.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _ready(self, wait_s: float = READY_WAIT_S) -> MailboxHost:
        """The host once the actor serves; ``UnavailableError`` (503) while it cannot."""
        if not self._started.is_set() and wait_s > 0:
            try:
                await asyncio.wait_for(self._started.wait(), wait_s)
            except TimeoutError:
                pass
        if self._stopped:
            raise UnavailableError(f"portal actor {self._name} is shut down")
        if not self._started.is_set() or self._host is None:
            why = self._start_error or "not started yet"
            raise UnavailableError(f"portal actor {self._name} is starting: {why}")
        return self._host

    async def start(self) -> str:
        """Once the actor serves (it starts itself); the reason if its first attempt failed,
        so an engine that cannot start says why instead of waiting."""
        await self._first_attempt.wait()
        await self._ready(0)
        return self._name

    async def ping(self) -> str:
        """``/healthz``: answers at once, refused while the actor cannot serve."""
        await self._ready(0)
        return self._name

    async def pid(self) -> int:
        return os.getpid()

    def _channel_for(self, connector_id: str) -> Channel:
        connector = self._registry.connectors.get(connector_id)
        if connector is None:
            raise NotFoundError(f"connector {connector_id!r} was removed")
        return self._channels.get(connector)

    async def _apply(self, part: Registry) -> None:
        """Serve this actor's portals: ``part`` is its part of the registry (memory: the
        registry sends each portal actor only its own, ``Registry.by_host``)."""
        self._registry = part
        assert self._host is not None
        await self._host.configure(list(part.portals.values()))
        release_freed_memory()  # what unpickling the part and configuring left behind

    async def _apply_rules(self, rules: RuleSet) -> None:
        assert self._host is not None
        await self._host.set_rules(rules)
        async with self._rules_applied:
            self._rules_version = rules.version
            self._rules_applied.notify_all()

    async def rules_applied(self, version: int, timeout_s: float) -> int:
        """Once this actor routes with rules ``version`` or newer (or on timeout): the
        admin API answers a reload only when every portal actor has taken it."""
        await self._ready()
        async with self._rules_applied:
            try:
                await asyncio.wait_for(
                    self._rules_applied.wait_for(lambda: self._rules_version >= version),
                    timeout_s,
                )
            except TimeoutError:
                pass
        return self._rules_version

    async def _follow_registry(self, registry: RegistryHost) -> None:
        async def apply(update: RegistryUpdate[Registry]) -> None:
            followed = update.applied_to(self._registry)
            if followed.version > self._registry.version:
                await self._apply(followed)

        await self._follow(
            "registry",
            lambda: registry.hosted_after(self._name, self._registry.version),
            apply,
        )

    async def _follow_rules(self, registry: RegistryHost) -> None:
        async def apply(rules: RuleSet) -> None:
            if rules.version > self._rules_version:
                await self._apply_rules(rules)

        await self._follow("rules", lambda: registry.rules_after(self._rules_version), apply)

    async def _follow(
        self, what: str, poll: Callable[[], Any], apply: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Apply the registry's answers to ``poll``, for ever. While it is down (its host
        restarting), or an answer cannot be applied, this one keeps working with what it
        has: delivery and routing of its portals never wait for the registry, only
        changes to them do. A loop boundary: it logs, counts and carries on."""
        failing = False
        while True:
            try:
                await apply(await poll())
            except Exception as exc:
                if not failing:
                    log.warning(
                        "portal actor %s: %s changes wait: %s",
                        self._name,
                        what,
                        reason(exc),
                        exc_info=not isinstance(exc, EngineError),
                    )
                    failing = True
                self._loop_error(f"{what}_follow")
                await asyncio.sleep(REGISTRY_RETRY_S)
                continue
            if failing:
                log.info("portal actor %s: %s followed again", self._name, what)
                failing = False

    def _loop_error(self, loop: str) -> None:
        """Count a background loop's failure (the loops run only while the host is open)."""
        if self._host is not None:
            self._host.counters.inc("openlines_loop_errors_total", loop=loop)

    def _widgets_to_prune(self) -> list[RetainedWidget]:
        assert self._host is not None
        return retained_widgets(
            self._registry.connectors.values(), self._channels.get, self._host.open_dialog_keys()
        )

    async def _every(
        self,
        sleep: Callable[[float], Awaitable[None]],
        seconds: float,
        loop: str,
        work: Callable[[MailboxHost], Awaitable[object]],
    ) -> None:
        """Housekeeping of the host every ``seconds``: pruning, putting quiet portals to
        sleep. A loop boundary: a round that fails is logged and counted, and the next one
        does the work."""
        while True:
            await sleep(seconds)
            try:
                assert self._host is not None
                await work(self._host)
            except Exception:
                log.exception("portal actor %s: %s failed", self._name, loop)
                self._loop_error(loop)

    # -- calls from channel actors ---------------------------------------------------------

    @ray.method(max_task_retries=APPEND_RETRIES)
    async def append(self, packed: bytes, source: int, watermark: float) -> list[bool]:
        """A channel actor hands over records (``engine.handoff``), packed
        (``actors.remote.PortalRemote``)."""
        host = await self._ready()
        return await host.append(unpack_records(packed), source, watermark)

    async def _watermark_of(self, source: int) -> float:
        """Ask channel actor ``source`` how far it has handed over to this actor."""
        handle = ray.get_actor(channel_actor(source), namespace=self._settings.namespace)
        mark: float = await handle.watermark.remote(self._name)
        return mark

    async def api(self, name: str, *args: Any) -> Any:
        """One of the portal API's calls (``engine.delivery.host_calls.HostCalls``), by name:
        the calls themselves are plain code, this actor only carries them."""
        if name not in API_CALLS:
            raise NotFoundError(f"no portal API call {name!r}")
        return await getattr(self._calls, name)(*args)

    async def stats(self) -> tuple[dict[Sample, float], dict[Sample, float]]:
        """Counters since this actor (re)started, and gauges read now."""
        host = await self._ready(0)
        gauges: dict[Sample, float] = {}
        for portal_id, store_gauges in (await host.gauges()).items():
            labels = (("portal", portal_id),)
            gauges[("openlines_outbox_depth", labels)] = store_gauges.outbox_depth
            gauges[("openlines_dead_letters", labels)] = store_gauges.dead_letters
            gauges[("openlines_unrouted", labels)] = store_gauges.unrouted
        for portal_id, (counts, online) in host.routing_gauges().items():
            gauges[("openlines_operators_online", (("portal", portal_id),))] = online
            for (line_id, state), count in counts.items():
                by_state = (("line", line_id), ("portal", portal_id), ("state", state))
                gauges[("openlines_dialogs", by_state)] = count
        return host.counters.snapshot(), gauges

    async def advance_clock(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            await self._clock.advance(seconds)

    async def shutdown(self) -> None:
        """Stop delivering; everything not delivered stays in the outbox. A start under way
        (the actor may be restarting just then) is cut short."""
        self._stopped = True
        self._first_attempt.set()
        self._starter.cancel()
        await asyncio.gather(self._starter, return_exceptions=True)
        await self._close()
        await close_shared_logs()  # the widget's log, if this actor sent a widget reply


def portal_actor(name: str, settings: ActorSettings) -> Any:
    """The portal actor called ``name``, created if it does not exist yet; it starts itself.

    Both the supervisor (at start-up, for every known portal) and channel actors (for a
    portal added through the admin API a moment ago) come here; Ray's ``get_if_exists``
    makes the creation race-free. Detached, because an actor that is not dies with the
    process that created it, restarts or not (Ray 2.60), and a channel actor that created
    one can crash; the supervisor ends portal actors itself when the engine stops.
    """
    return PortalActor.options(  # type: ignore[attr-defined]
        name=name,
        namespace=settings.namespace,
        get_if_exists=True,
        lifetime="detached",
        **RESTARTS,
    ).remote(name, settings)
