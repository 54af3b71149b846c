"""Routing: decisions per second, append-to-assigned latency, memory per open dialog.

    python -m bench.routing            # issue 6's sizes: 1,000 operators over 50 lines
    python -m bench.routing --quick    # small sizes, under a minute

Routing lives in the portal actors: a ``PortalRouter`` runs the pure ``Dispatcher`` on its
board and commits each plan in one SQLite transaction. Everything here drives those real
parts in this process, without Ray, on the real clock:

* **decisions**: dialogs wait while every operator is offline; operators come online, then
  finish dialogs until none waits (the backlog drain). Apart, new conversations arrive while
  operators have room. Each flow runs through the ``Dispatcher`` alone and through a
  ``PortalRouter`` committing to a real ``SqliteOutbox`` (the realistic figure).
* **append to assigned**: a real ``MailboxHost`` delivering to an accept-everything portal
  in another process; new conversations at half the maximum rate measured for appends plus
  routing; per message, from ``host.append()`` returning (durable) to the commit that stored
  its ``dialog.assigned`` event.
* **memory per open dialog**: a fresh process loads a board of N open dialogs from the store
  into a ``PortalRouter``; memory after minus before, for two N.

The rules (``bench.routing_rules``) have every part on; CRM owners are given to a tenth of
the customers. End-to-end throughput with routing on and off needs the whole engine:
``bench.scenarios.throughput_routing_on_off`` writes the same rules for it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import psutil
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.routing_rules import (
    PORTAL_ID,
    Layout,
    backlog_capacity,
    bench_rules,
    roomy_capacity,
)
from engine.clock import SystemClock
from engine.config import PortalConfig
from engine.delivery.host import MailboxHost
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.metrics import Counters
from engine.models import (
    Customer,
    DialogTarget,
    InboundMessage,
    ReplyRequest,
    Route,
    SentReceipt,
    TextContent,
)
from engine.routing.dispatcher import Dispatcher
from engine.routing.plan import CustomerOwners, Plan
from engine.routing.portal_router import INBOX_BATCH, PortalRouter
from engine.routing.rules import RuleSet, load_rules
from engine.routing.state import Board
from engine.security.keys import generate_portal_keypair
from engine.store.base import OutboxStore
from engine.store.records import Conversation, InboxRow, OutboxRecord
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.threaded import ThreadedStore

CONNECTOR_ID = "tg-bench"
WAIT_LIMIT_S = 300.0
"""No wait for the engine in this bench lasts longer (a stuck run fails, it does not hang)."""
DECISIONS_TARGET_PER_S = 20_000
P99_TARGET_MS = 50


@dataclass(frozen=True)
class RoutingSizes:
    new_dialogs: int = 10_000
    """New conversations arriving while operators have room."""
    max_rate_messages: int = 10_000
    """Appends in the closed loop that finds the maximum rate."""
    max_rate_concurrency: int = 64
    """Appends in flight at once, as webhooks over parallel connections."""
    paced_seconds: float = 20.0
    paced_messages_cap: int = 20_000
    memory_dialogs: tuple[int, ...] = (10_000, 50_000)


QUICK_SIZES = RoutingSizes(
    new_dialogs=2_000,
    max_rate_messages=2_000,
    paced_seconds=5.0,
    paced_messages_cap=5_000,
    memory_dialogs=(2_000, 10_000),
)
QUICK_WAITING = 2_000
FULL_WAITING = 10_000


# -- conversations ---------------------------------------------------------------------------


def chat_key(phase: str, n: int) -> str:
    return f"{phase}-{n}"


def inbox_row(layout: Layout, phase: str, n: int, now: float) -> InboxRow:
    key = chat_key(phase, n)
    conversation = Conversation(
        layout.line_id(n % layout.lines), CONNECTOR_ID, "telegram", key, key
    )
    return InboxRow(n + 1, f"evt_{key}", "message.received", conversation, 1, now)


def record(layout: Layout, phase: str, n: int, now: float) -> OutboxRecord:
    """A customer's first message as the Telegram channel stores it."""
    key = chat_key(phase, n)
    route = Route(
        portal_id=PORTAL_ID,
        line_id=layout.line_id(n % layout.lines),
        connector_id=CONNECTOR_ID,
        channel="telegram",
    )
    message = InboundMessage(
        id=inbound_event_id(CONNECTOR_ID, key),
        route=route,
        dialog_key=key,
        customer=Customer(channel_user_id=key, name=f"customer {key}"),
        content=TextContent(text=f"Hello, this is {key}: my order has not arrived yet."),
        channel_message_id="1",
        channel_event_id=key,
        order_key=1,
        sent_at=now,
        received_at=now,
    )
    return outbox_record(message)


def owners_of(layout: Layout, phase: str, count: int) -> dict[str, CustomerOwners]:
    """CRM records: every tenth customer has a responsible operator on their line."""
    on_shift = [layout.on_shift(line) for line in range(layout.lines)]
    found = {}
    for n in range(3, count, 10):
        candidates = on_shift[n % layout.lines]
        identity = f"{CONNECTOR_ID}/{chat_key(phase, n)}"
        found[identity] = CustomerOwners(identity, candidates[(n // 10) % len(candidates)], None)
    return found


def portal_config(endpoint: str = "http://127.0.0.1:9/unused") -> PortalConfig:
    _, public = generate_portal_keypair()
    return PortalConfig.model_validate(
        {
            "id": PORTAL_ID,
            "endpoint": endpoint,
            "public_key": public,
            "license_key": "bench-license-key-0123456789",
            "retry_initial_s": 0.2,
            "retry_max_s": 2.0,
        }
    )


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float | None]:
    if not samples_s:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(1000 * ordered[-1], 3)}


def per_s(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.perf_counter() + WAIT_LIMIT_S
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"routing bench: {what} not reached within {WAIT_LIMIT_S} s")
        await asyncio.sleep(0.002)


# -- decisions -------------------------------------------------------------------------------


class Driver(Protocol):
    """What the decision flows need of a router: the pure one or the committing one."""

    @property
    def board(self) -> Board: ...

    @property
    def decisions(self) -> int: ...

    async def stage(self, layout: Layout, phase: str, count: int) -> None:
        """Make ``count`` new conversations ready to arrive (not timed)."""

    async def route_staged(self) -> None:
        """Let them arrive; return once they are routed (and committed)."""

    async def online(self, operator_id: str) -> None: ...

    async def finish(self, dialog_id: str, operator_id: str | None) -> None: ...

    async def close(self) -> None: ...


class DispatcherDriver:
    """The dispatcher alone, fed as its owner feeds it: inbox batches, one action a step."""

    def __init__(self, rules: RuleSet) -> None:
        self.dispatcher = Dispatcher(PORTAL_ID, Board(), rules.for_portal(PORTAL_ID))
        self.decisions = 0
        self._owners: dict[str, CustomerOwners] = {}
        self._rows: list[InboxRow] = []

    @classmethod
    async def open(cls, rules: RuleSet, path: Path) -> DispatcherDriver:
        return cls(rules)

    @property
    def board(self) -> Board:
        return self.dispatcher.board

    def _take(self) -> None:
        self.decisions += len(self.dispatcher.take_plan().decisions)

    async def stage(self, layout: Layout, phase: str, count: int) -> None:
        now = time.time()
        self._rows = [inbox_row(layout, phase, n, now) for n in range(count)]
        self._owners.update(owners_of(layout, phase, count))

    async def route_staged(self) -> None:
        for start in range(0, len(self._rows), INBOX_BATCH):
            rows = self._rows[start : start + INBOX_BATCH]
            self.dispatcher.arrive(rows, self._owners, {}, time.time())
            self._take()

    async def online(self, operator_id: str) -> None:
        self.dispatcher.set_operator(operator_id, "online", True, time.time())
        self._take()

    async def finish(self, dialog_id: str, operator_id: str | None) -> None:
        self.dispatcher.finish(dialog_id, time.time(), operator_id)
        self._take()

    async def close(self) -> None:
        pass


def _ignore(_: object) -> None:
    """No mailbox and no reply sender in the decision flows: nothing is delivered."""


class RouterDriver:
    """A ``PortalRouter`` on a real ``SqliteOutbox`` file, wired as ``MailboxHost`` does;
    conversations arrive through the store's inbox, as appended messages do."""

    def __init__(
        self, store: ThreadedStore[OutboxStore], router: PortalRouter, counters: Counters
    ) -> None:
        self._store = store
        self.router = router
        self._counters = counters
        self._staged = 0

    @classmethod
    async def open(cls, rules: RuleSet, path: Path) -> RouterDriver:
        clock = SystemClock()
        store: ThreadedStore[OutboxStore] = ThreadedStore(SqliteOutbox(path), clock, "outbox")
        config = portal_config()
        counters = Counters()
        portal_rules = rules.for_portal(PORTAL_ID)
        router = PortalRouter(
            lambda: config, store, portal_rules, clock, counters, _ignore, _ignore
        )
        await router.start()
        return cls(store, router, counters)

    @property
    def board(self) -> Board:
        return self.router.dispatcher.board

    @property
    def decisions(self) -> int:
        return int(self._counters.value("openlines_routing_decisions_total", portal=PORTAL_ID))

    def _opened(self) -> int:
        return int(self._counters.value("openlines_dialogs_opened_total", portal=PORTAL_ID))

    async def stage(self, layout: Layout, phase: str, count: int) -> None:
        now = time.time()
        owners = Plan(customers=owners_of(layout, phase, count))
        store = self._store.store
        await self._store.call(store.commit_plan, PORTAL_ID, owners, [], [], now, False)
        records = [record(layout, phase, n, now) for n in range(count)]
        for start in range(0, count, INBOX_BATCH):
            await self._store.append(records[start : start + INBOX_BATCH])
        self._staged = count

    async def route_staged(self) -> None:
        target = self._opened() + self._staged
        self.router.wake()
        await eventually(lambda: self._opened() >= target, "staged conversations routed")

    async def online(self, operator_id: str) -> None:
        await self.router.set_operator(operator_id, "online", True)

    async def finish(self, dialog_id: str, operator_id: str | None) -> None:
        await self.router.finish(dialog_id, operator_id)

    async def close(self) -> None:
        await self.router.stop()
        await self._store.close()


async def timed(step: Awaitable[None], durations: list[float]) -> None:
    began = time.perf_counter()
    await step
    durations.append(time.perf_counter() - began)


def oldest_assigned(board: Board) -> deque[tuple[str, str | None]]:
    """Assigned dialogs and their operators, longest held first: the order they finish in."""
    assigned = sorted(
        (d for d in board.dialogs.values() if d.state == "assigned"),
        key=lambda d: d.assigned_at or 0.0,
    )
    return deque((d.dialog_id, d.operator_id) for d in assigned)


def phase_figures(steps: Sequence[float], decisions: int) -> dict[str, Any]:
    seconds = sum(steps)
    return {
        "steps": len(steps),
        "decisions": decisions,
        "seconds": round(seconds, 3),
        "decisions_per_s": per_s(decisions, seconds),
        "step_ms": percentiles_ms(steps),
    }


async def drain_backlog(driver: Driver, layout: Layout, waiting: int) -> dict[str, Any]:
    """``waiting`` dialogs queue while every operator is offline; operators come online in
    a random order, then finish their oldest dialogs until none waits. A phase's time is
    the sum of its steps (the bench's own bookkeeping between steps is left out)."""
    await driver.stage(layout, "w", waiting)
    began = time.perf_counter()
    await driver.route_staged()
    queued_s = time.perf_counter() - began

    operators = layout.all_operators()
    random.Random(7).shuffle(operators)
    online_steps: list[float] = []
    for operator_id in operators:
        await timed(driver.online(operator_id), online_steps)
    online_decisions = driver.decisions

    finish_steps: list[float] = []
    queue: deque[tuple[str, str | None]] = deque()
    while driver.decisions < waiting and len(finish_steps) < 2 * waiting:
        queue = queue or oldest_assigned(driver.board)
        await timed(driver.finish(*queue.popleft()), finish_steps)
    online = phase_figures(online_steps, online_decisions)
    finish = phase_figures(finish_steps, driver.decisions - online_decisions)
    return {
        "waiting": waiting,
        "capacity_per_operator": backlog_capacity(layout, waiting),
        "queued_per_s": per_s(waiting, queued_s),
        "online": online,
        "finish": finish,
        "decisions": driver.decisions,
        # From the steps' own times: the phases' figures are rounded to the millisecond,
        # which a tiny run can round to nothing.
        "decisions_per_s": per_s(driver.decisions, sum(online_steps) + sum(finish_steps)),
        "step_ms": percentiles_ms(online_steps + finish_steps),
        "left_waiting": waiting - driver.decisions,
    }


async def new_dialogs(driver: Driver, layout: Layout, count: int) -> dict[str, Any]:
    """Every operator online with room; ``count`` new conversations arrive at once and
    are routed in inbox batches (``INBOX_BATCH`` a step)."""
    for operator_id in layout.all_operators():
        await driver.online(operator_id)
    await driver.stage(layout, "n", count)
    before = driver.decisions
    began = time.perf_counter()
    await driver.route_staged()
    seconds = time.perf_counter() - began
    decisions = driver.decisions - before
    return {
        "dialogs": count,
        "decisions": decisions,
        "seconds": round(seconds, 3),
        "decisions_per_s": per_s(decisions, seconds),
    }


async def measure_decisions(
    layout: Layout, waiting: int, sizes: RoutingSizes, workdir: Path
) -> dict[str, Any]:
    """Both flows, through the dispatcher alone and through a committing router."""
    backlog, _ = bench_rules(workdir, "rules-backlog", layout, backlog_capacity(layout, waiting))
    roomy, _ = bench_rules(
        workdir, "rules-roomy", layout, roomy_capacity(layout, sizes.new_dialogs)
    )
    openers: dict[str, Callable[[RuleSet, Path], Awaitable[Driver]]] = {
        "pure": DispatcherDriver.open,
        "committed": RouterDriver.open,
    }
    results: dict[str, Any] = {}
    for name, open_driver in openers.items():
        driver = await open_driver(backlog, workdir / f"{name}-backlog.sqlite3")
        try:
            drained = await drain_backlog(driver, layout, waiting)
        finally:
            await driver.close()
        driver = await open_driver(roomy, workdir / f"{name}-new.sqlite3")
        try:
            arrived = await new_dialogs(driver, layout, sizes.new_dialogs)
        finally:
            await driver.close()
        results[name] = {"backlog": drained, "new_dialogs": arrived}
    return results


# -- append to assigned ------------------------------------------------------------------------


class AssignedStamps:
    """When each conversation's ``dialog.assigned`` event was committed.

    Stamped on the store's thread as soon as ``commit_plan`` returns: the moment the event
    is durable, before the event loop hears of it. The engine has no hook there; the bench
    shadows the method on the host's own store instance, which changes nothing it does.
    """

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def watch(self, store: OutboxStore) -> None:
        commit = store.commit_plan

        def stamped(portal_id: str, plan: Plan, *args: Any) -> list[int]:
            hashes = commit(portal_id, plan, *args)
            done = time.perf_counter()
            for entry in plan.entries:
                if entry.kind == "dialog.assigned":
                    self.at.setdefault(entry.dialog_ref, done)
            return hashes

        store.commit_plan = stamped  # type: ignore[method-assign,assignment]


class AcceptingChannel:
    """Where the line's own texts to customers go: sent at once, to nobody."""

    idempotent_sends = True

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        return SentReceipt(channel_message_ids=("1",))


class PortalSink:
    """An accept-everything portal in its own process (``--sink``): 200 to every POST."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.routing", "--sink", stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        ready = await asyncio.wait_for(self.process.stdout.readline(), 60)  # b"ready <port>"
        self.port = int(ready.split()[1])

    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/p/{PORTAL_ID}"

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def serve_sink() -> None:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", accept)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"ready {runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@dataclass
class LatencyRun:
    host: MailboxHost
    layout: Layout
    stamps: AssignedStamps
    appended: dict[str, float] = field(default_factory=dict)
    ack_s: dict[str, float] = field(default_factory=dict)

    async def append(self, item: OutboxRecord) -> None:
        began = time.perf_counter()
        await self.host.append([item])
        self.appended[item.dialog_ref] = done = time.perf_counter()
        self.ack_s[item.dialog_ref] = done - began

    def records(self, phase: str, count: int) -> list[OutboxRecord]:
        now = time.time()
        return [record(self.layout, phase, n, now) for n in range(count)]

    async def assigned(self, refs: Sequence[str]) -> dict[str, Any]:
        at = self.stamps.at
        await eventually(lambda: all(ref in at for ref in refs), "dialogs assigned")
        return {
            "append_to_assigned_ms": percentiles_ms(
                [max(0.0, at[ref] - self.appended[ref]) for ref in refs]
            ),
            "append_ms": percentiles_ms([self.ack_s[ref] for ref in refs]),
            "assigned_before_append_returned": sum(at[r] < self.appended[r] for r in refs),
        }

    async def closed_loop(self, count: int, concurrency: int) -> dict[str, Any]:
        """``concurrency`` callers append one message at a time, as fast as they can; the
        rate counts until the last dialog is assigned: appends and routing together."""
        items = self.records("m", count)
        refs = [item.dialog_ref for item in items]

        async def caller(share: Sequence[OutboxRecord]) -> None:
            for item in share:
                await self.append(item)

        began = time.perf_counter()
        await asyncio.gather(*(caller(items[i::concurrency]) for i in range(concurrency)))
        acked_s = time.perf_counter() - began
        figures = await self.assigned(refs)
        seconds = max(self.stamps.at[ref] for ref in refs) - began
        return {
            "messages": count,
            "concurrency": concurrency,
            "appends_per_s": per_s(count, acked_s),
            "assigned_per_s": per_s(count, seconds),
            **figures,
        }

    async def open_loop(self, rate: float, count: int) -> dict[str, Any]:
        """``count`` messages at ``rate`` a second, each appended on its own (open loop)."""
        items = self.records("p", count)
        tasks: set[asyncio.Task[None]] = set()
        began = time.perf_counter()
        for n, item in enumerate(items):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.append(item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_s = time.perf_counter() - began
        await asyncio.gather(*tasks)
        figures = await self.assigned([item.dialog_ref for item in items])
        return {
            "rate_per_s": round(rate, 1),
            "messages": count,
            "achieved_rate_per_s": per_s(count, sent_s),
            **figures,
        }


async def measure_append_to_assigned(
    layout: Layout, sizes: RoutingSizes, workdir: Path
) -> dict[str, Any]:
    """The maximum rate of new conversations (appends plus routing), then latency at half."""
    capacity = roomy_capacity(layout, sizes.max_rate_messages + sizes.paced_messages_cap)
    rules, _ = bench_rules(workdir, "rules-latency", layout, capacity)
    sink = PortalSink()
    await sink.start()
    clock = SystemClock()
    try:
        async with aiohttp.ClientSession() as session:
            host = MailboxHost(
                workdir / "latency.sqlite3",
                clock,
                HttpTransport(session, clock),
                EngineSealer(Ed25519PrivateKey.generate()),
                lambda _connector_id: AcceptingChannel(),
                session,
            )
            run = LatencyRun(host, layout, AssignedStamps())
            run.stamps.watch(host._store.store)  # the host's own store instance (no seam)
            try:
                await host.set_rules(rules)
                await host.configure([portal_config(sink.endpoint())])
                router = await host.router(PORTAL_ID)
                for operator_id in layout.all_operators():
                    await router.set_operator(operator_id, "online", True)
                maximum = await run.closed_loop(sizes.max_rate_messages, sizes.max_rate_concurrency)
                rate = maximum["assigned_per_s"] / 2
                count = min(sizes.paced_messages_cap, max(1, int(rate * sizes.paced_seconds)))
                half = await run.open_loop(rate, count)
                open_dialogs = len(router.dispatcher.board.dialogs)
            finally:
                await host.close()
    finally:
        await sink.stop()
    return {
        "capacity_per_operator": capacity,
        "maximum": maximum,
        "at_half": half,
        "open_dialogs_at_end": open_dialogs,
    }


# -- memory per open dialog --------------------------------------------------------------------


def build_board_file(path: Path, layout: Layout, rules: RuleSet, count: int) -> None:
    """A store holding ``count`` open dialogs as the dispatcher made them: every operator
    online and at capacity, the other dialogs waiting."""
    dispatcher = Dispatcher(PORTAL_ID, Board(), rules.for_portal(PORTAL_ID))
    for operator_id in layout.all_operators():
        dispatcher.set_operator(operator_id, "online", True, time.time())
    owners = owners_of(layout, "b", count)
    for start in range(0, count, INBOX_BATCH):
        now = time.time()
        rows = [
            inbox_row(layout, "b", n, now) for n in range(start, min(count, start + INBOX_BATCH))
        ]
        dispatcher.arrive(rows, owners, {}, now)
    plan = dispatcher.take_plan()
    state = Plan(dialogs=plan.dialogs, operators=plan.operators, customers=plan.customers)
    outbox = SqliteOutbox(path)
    try:
        outbox.commit_plan(PORTAL_ID, state, [], [], time.time(), True)
    finally:
        outbox.close()


def process_memory() -> dict[str, int]:
    info = psutil.Process().memory_full_info()
    return {"rss": info.rss, "pss": getattr(info, "pss", info.uss), "uss": info.uss}


def board_memory(path: str, rules_dir: str) -> dict[str, Any]:
    """In a fresh process: memory before and after a ``PortalRouter`` loads its board."""
    return asyncio.run(_board_memory(Path(path), Path(rules_dir)))


async def _board_memory(path: Path, rules_dir: Path) -> dict[str, Any]:
    clock = SystemClock()
    store: ThreadedStore[OutboxStore] = ThreadedStore(SqliteOutbox(path), clock, "outbox")
    config = portal_config()
    rules = load_rules(rules_dir, 1).for_portal(PORTAL_ID)
    router = PortalRouter(lambda: config, store, rules, clock, Counters(), _ignore, _ignore)
    try:
        gc.collect()
        before = process_memory()
        await router.start()
        gc.collect()
        after = process_memory()
        dialogs = len(router.dispatcher.board.dialogs)
    finally:
        await router.stop()
        await store.close()
    return {"dialogs": dialogs, "before": before, "after": after}


async def measure_memory(layout: Layout, counts: Sequence[int], workdir: Path) -> dict[str, Any]:
    """Per board size, what loading it added; and the cost of one more dialog between the
    smallest and the largest board (fixed costs such as SQLite's page cache drop out)."""
    capacity = backlog_capacity(layout, min(counts))
    rules, rules_dir = bench_rules(workdir, "rules-memory", layout, capacity)
    rows = []
    for count in counts:
        path = workdir / f"board-{count}.sqlite3"
        build_board_file(path, layout, rules, count)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            found = await asyncio.get_running_loop().run_in_executor(
                pool, board_memory, str(path), str(rules_dir)
            )
        grown = {kind: found["after"][kind] - found["before"][kind] for kind in found["after"]}
        rows.append(
            {
                "dialogs": found["dialogs"],
                "process_mb_before": {k: round(v / 2**20, 1) for k, v in found["before"].items()},
                "grown_bytes": grown,
                "bytes_per_dialog": {k: round(v / found["dialogs"]) for k, v in grown.items()},
            }
        )
    low, high = rows[0], rows[-1]
    extra = high["dialogs"] - low["dialogs"]
    marginal = {
        kind: round((high["grown_bytes"][kind] - low["grown_bytes"][kind]) / extra)
        for kind in high["grown_bytes"]
    } if extra > 0 else high["bytes_per_dialog"]  # fmt: skip
    return {"boards": rows, "marginal_bytes_per_dialog": marginal}


# -- the scenario ------------------------------------------------------------------------------


async def measure_routing(
    lines: int = 50,
    operators: int = 1000,
    dialogs: int = FULL_WAITING,
    quick: bool = False,
    sizes: RoutingSizes | None = None,
) -> dict[str, Any]:
    """Every routing figure of issue 6 except end-to-end throughput (see ``write_rules``).

    ``dialogs`` is the backlog waiting when operators come online; ``quick`` makes the
    other flows small (``sizes``, when given, sets them all).
    """
    sizes = sizes or (QUICK_SIZES if quick else RoutingSizes())
    layout = Layout(lines, operators)
    with tempfile.TemporaryDirectory(prefix="olbench-routing-") as tmp:
        workdir = Path(tmp)
        decisions = await measure_decisions(layout, dialogs, sizes, workdir)
        latency = await measure_append_to_assigned(layout, sizes, workdir)
        memory = await measure_memory(layout, sizes.memory_dialogs, workdir)
    return summary(layout, dialogs, sizes, decisions, latency, memory)


def summary(
    layout: Layout,
    waiting: int,
    sizes: RoutingSizes,
    decisions: dict[str, Any],
    latency: dict[str, Any],
    memory: dict[str, Any],
) -> dict[str, Any]:
    """Headline figures (units in the names, ratios to issue 6's targets), then details."""
    pure, committed = decisions["pure"], decisions["committed"]
    half = latency["at_half"]["append_to_assigned_ms"]
    per_dialog = memory["marginal_bytes_per_dialog"]
    return {
        "lines": layout.lines,
        "operators": layout.operators,
        "waiting_dialogs": waiting,
        "decisions_per_s": pure["backlog"]["decisions_per_s"],
        "decisions_per_s_committed": committed["backlog"]["decisions_per_s"],
        "decisions_ratio_to_target": _ratio(
            pure["backlog"]["decisions_per_s"], DECISIONS_TARGET_PER_S
        ),
        "decisions_committed_ratio_to_target": _ratio(
            committed["backlog"]["decisions_per_s"], DECISIONS_TARGET_PER_S
        ),
        "new_dialog_decisions_per_s": pure["new_dialogs"]["decisions_per_s"],
        "new_dialog_decisions_per_s_committed": committed["new_dialogs"]["decisions_per_s"],
        "max_new_conversations_per_s": latency["maximum"]["assigned_per_s"],
        "append_to_assigned_rate_per_s": latency["at_half"]["rate_per_s"],
        "append_to_assigned_p50_ms": half["p50"],
        "append_to_assigned_p95_ms": half["p95"],
        "append_to_assigned_p99_ms": half["p99"],
        "append_to_assigned_max_ms": half["max"],
        "append_to_assigned_p99_ratio_to_target": _ratio(half["p99"], P99_TARGET_MS),
        "memory_per_open_dialog_bytes": per_dialog["rss"],
        "memory_per_open_dialog_pss_bytes": per_dialog["pss"],
        "batch_call_ms": committed["backlog"]["step_ms"],
        "targets": {
            "decisions_per_s": DECISIONS_TARGET_PER_S,
            "append_to_assigned_p99_ms": P99_TARGET_MS,
        },
        "sizes": asdict(sizes),
        "decisions": decisions,
        "latency": latency,
        "memory": memory,
    }


def _ratio(value: float | None, target: float) -> float | None:
    return None if value is None else round(value / target, 3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--sink", action="store_true", help="serve the accept-all portal")
    args = parser.parse_args(argv)
    if args.sink:
        asyncio.run(serve_sink())
        return
    waiting = QUICK_WAITING if args.quick else FULL_WAITING
    result = asyncio.run(measure_routing(dialogs=waiting, quick=args.quick))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
