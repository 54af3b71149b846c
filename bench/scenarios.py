"""The benchmark's scenarios; each returns a JSON-able dict of figures.

All traffic stays on 127.0.0.1. Sizes come from a ``Sizes`` object so ``--quick`` runs the
same code at a fraction of the cost.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import spawn
from bench.routing_rules import Layout, operators_online, roomy_capacity, write_rules
from bench.sink import SinkClient, write_keys
from bench.stage import (
    LINE,
    Stage,
    check_passed,
    delivery_check,
    license_key,
    portal_ids,
    process_cpu_s,
    process_uss_mb,
)
from bench.webhooks import TelegramWebhooks
from engine.runtime import free_port
from engine.security.keys import generate_portal_keypair


@dataclass(frozen=True)
class Sizes:
    duration_s: float = 15.0
    connections: int = 256
    chats: int = 3000
    portals_for_throughput: int = 10
    throughput_pool_size: int = 0
    scale_portals: tuple[int, ...] = (1, 10, 100, 1000, 10_000)
    actor_portals: tuple[int, ...] = (1, 10, 25, 50)
    pool_size: int = 2
    outage_messages: int = 1_000_000
    other_portals_rate: float = 500.0
    backlog_rate: float = 5000.0
    routing_dialogs: int = 10_000
    closed_loop_connections: int = 32
    closed_loop_warm_up_s: float = 3.0
    closed_loop_steady_s: float = 10.0
    closed_loop_channel_actors: tuple[int, ...] = (1, 2)
    delivery_floor_s: float = 10.0
    widget_visitors: int = 10_000
    widget_senders: int = 32
    widget_send_s: float = 10.0
    profile_dir: str | None = None
    """Where ``closed_loop`` writes py-spy profiles of a separate pass; None: no profiling."""


QUICK = Sizes(
    duration_s=5.0,
    chats=1000,
    scale_portals=(1, 10, 100, 1000),
    actor_portals=(1, 5),
    outage_messages=50_000,
    routing_dialogs=2_000,
    closed_loop_warm_up_s=2.0,
    closed_loop_steady_s=5.0,
    widget_visitors=2_000,
    widget_send_s=5.0,
)
WARM_UP: dict[str, Any] = {"connections": 16, "chats": 300, "duration_s": 2.0}
"""The warm-up before a maximum-rate run: actors, connections, dialogs."""
ROUTING_OPERATORS_PER_PORTAL = 20
ON_OFF_TARGET = 0.9
"""Throughput with routing on, as a share of the same run with routing off."""


async def floor(sizes: Sizes) -> dict[str, Any]:
    """A bare aiohttp server under the same load generator: the machine's own limit."""
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor_server",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    ready = await asyncio.wait_for(server.stdout.readline(), 30)  # b"ready <port>"
    port = int(ready.split()[1])
    before = process_cpu_s(server.pid)
    began = time.perf_counter()
    result = await spawn(
        f"http://127.0.0.1:{port}",
        "telegram",
        "floor",
        connections=sizes.connections,
        chats=sizes.chats,
        duration_s=sizes.duration_s,
    )
    seconds = time.perf_counter() - began
    result["cpu_percent_by_process"] = {
        "floor_server": round(100 * (process_cpu_s(server.pid) - before) / seconds, 1),
        "loadgen": result.get("cpu_percent"),
    }
    server.terminate()
    await server.wait()
    return result


async def throughput_and_latency(sizes: Sizes) -> dict[str, Any]:
    """Maximum sustainable rate of mixed Telegram/VK/Viber webhooks, then latency at
    25, 50 and 75 % of it (open loop, paced)."""
    stage = Stage(portal_ids(sizes.portals_for_throughput), pool_size=sizes.throughput_pool_size)
    await stage.start()
    try:
        await stage.load(
            "mixed", portals=len(stage.portals), connections=16, chats=300, duration_s=2.0
        )  # warm-up: actors, connections, dialogs
        await stage.sink.reset()
        result = await stage.load(
            "mixed",
            portals=len(stage.portals),
            connections=sizes.connections,
            chats=sizes.chats,
            duration_s=sizes.duration_s,
        )
        stats = await stage.wait_delivered(result["ok"])
        maximum = {
            "load": result,
            "check": delivery_check(result["ok"], stats),
            "latency_ms": stats["latency_ms"],
            "memory_mb": stage.memory_mb(),
        }
        max_rate = result["requests_per_s"]
        at_rates = []
        for fraction in (0.25, 0.5, 0.75):
            await stage.sink.reset()
            paced = await stage.load(
                "mixed",
                portals=len(stage.portals),
                connections=sizes.connections,
                chats=sizes.chats,
                duration_s=sizes.duration_s,
                rate=fraction * max_rate,
            )
            stats = await stage.wait_delivered(paced["ok"])
            at_rates.append(
                {
                    "fraction_of_max": fraction,
                    "offered_per_s": round(fraction * max_rate),
                    "achieved_per_s": paced["requests_per_s"],
                    "latency_ms": stats["latency_ms"],
                    "check": delivery_check(paced["ok"], stats),
                    "cpu_percent_by_process": paced["cpu_percent_by_process"],
                }
            )
        return {"maximum": maximum, "at_rates": at_rates}
    finally:
        await stage.stop()


def delivered_per_s(stats: dict[str, Any]) -> float:
    """Customer messages the sink received per second, first to last."""
    first, last = stats["first_event_ns"], stats["last_event_ns"]
    if first is None or last is None or last <= first:
        return 0.0
    return round(stats["messages"] / ((last - first) / 1e9), 1)


async def scale_in_portals(sizes: Sizes) -> dict[str, Any]:
    """1 to 10,000 portals on a pool of portal actors; then one actor per portal."""
    pooled = []
    for count in sizes.scale_portals:
        stage = Stage(portal_ids(count), channels=("telegram",), pool_size=sizes.pool_size)
        await stage.start()
        try:
            await asyncio.sleep(2.0)
            idle = stage.memory_mb()
            await stage.sink.reset()
            result = await stage.load(
                "telegram",
                portals=count,
                connections=sizes.connections,
                chats=max(sizes.chats, count),
                duration_s=sizes.duration_s,
            )
            stats = await stage.wait_delivered(result["ok"])
            row: dict[str, Any] = {}
            if count == max(sizes.scale_portals):
                # Every message a batch of one: the engine's delivery rate against one
                # process doing nothing but seal, sign and post such batches to the same sink.
                floor = await stage.delivery_floor(sizes.delivery_floor_s)
                delivered = delivered_per_s(stats)
                row = {
                    "delivery_floor": floor,
                    "delivered_per_s": delivered,
                    "delivery_ratio_to_floor": round(delivered / floor["delivered_per_s"], 3),
                }
            pooled.append(
                {
                    **row,
                    "portals": count,
                    "start_s": round(stage.started_in_s, 1),
                    "requests_per_s": result["requests_per_s"],
                    "latency_ms": stats["latency_ms"],
                    "batches": stats["batches"],
                    "check": delivery_check(result["ok"], stats),
                    "idle_engine_mb": round(
                        sum(v for k, v in idle.items() if k.startswith("engine")), 1
                    ),
                    "idle_memory_mb": idle,
                    "cpu_percent_by_process": result["cpu_percent_by_process"],
                }
            )
        finally:
            await stage.stop()
    # Memory per portal is read between rows with the same number of portal actors (a pool
    # of N serves fewer than N portals with fewer actors), so an actor is not counted as
    # portals' memory.
    ten = next((row for row in pooled if row["portals"] == 10), pooled[0])
    for row in pooled:
        if row["portals"] > ten["portals"]:
            extra = row["idle_engine_mb"] - ten["idle_engine_mb"]
            row["idle_kb_per_portal"] = round(1000 * extra / (row["portals"] - ten["portals"]), 1)
        row["throughput_vs_10_portals"] = round(row["requests_per_s"] / ten["requests_per_s"], 2)
        # Ray and the engine's actors take the same time whatever the portals: what the
        # portals add is the start beyond the one-portal row.
        row["portals_start_s"] = round(row["start_s"] - pooled[0]["start_s"], 1)

    per_actor = []
    for count in sizes.actor_portals:
        stage = Stage(portal_ids(count), channels=("telegram",), pool_size=0)
        await stage.start()
        try:
            await asyncio.sleep(2.0)
            idle = stage.memory_mb()
            result = await stage.load(
                "telegram",
                portals=count,
                connections=sizes.connections,
                chats=max(sizes.chats, count),
                duration_s=min(sizes.duration_s, 5.0),
            )
            stats = await stage.wait_delivered(result["ok"])
            per_actor.append(
                {
                    "portals": count,
                    "start_s": round(stage.started_in_s, 1),
                    "portal_actors_mb": idle.get("engine:PortalActor", 0.0),
                    "mb_per_portal": round(idle.get("engine:PortalActor", 0.0) / count, 1),
                    "requests_per_s": result["requests_per_s"],
                    "check": delivery_check(result["ok"], stats),
                }
            )
        finally:
            await stage.stop()
    return {"pooled": pooled, "pool_size": sizes.pool_size, "actor_per_portal": per_actor}


async def outage_and_drain(sizes: Sizes) -> dict[str, Any]:
    """One portal down while a backlog builds for it; the others' latency; then the drain.

    The same load runs before and during the outage (the backlog portal's at a fixed rate,
    the others' at a low one), so a change in the others' latency is the outage's doing.
    """
    stage = Stage(
        ["down0", "up0", "up1"],
        channels=("telegram",),
        portal_overrides={"down0": {"batch_max_events": 5000, "retry_max_s": 1.0}},
    )
    await stage.start()
    try:
        others = {
            "portals": 2,
            "prefix": "up",
            "connections": 8,
            "chats": 200,
            "rate": sizes.other_portals_rate,
            "duration_s": 20.0,
        }
        backlog_load = {
            "prefix": "down",
            "portals": 1,
            "connections": sizes.connections,
            "chats": sizes.chats,
            "rate": sizes.backlog_rate,
        }
        await stage.sink.watch(["up0", "up1"])
        await stage.sink.reset()
        steady = asyncio.create_task(stage.load("telegram", duration_s=20.0, **backlog_load))
        before_load = await stage.load("telegram", **others)
        await steady
        before = await stage.sink.stats()
        await stage.sink.down("down0")
        await stage.sink.reset()
        backlog_task = asyncio.create_task(
            stage.load("telegram", total=sizes.outage_messages, duration_s=None, **backlog_load)
        )
        during_load = await stage.load("telegram", **others)
        during = await stage.wait_delivered(during_load["ok"])
        backlog = await backlog_task
        metrics = await stage.engine.metrics()  # type: ignore[union-attr]
        depth = metrics.get('openlines_outbox_depth{portal="down0"}')
        # Part of the depth: messages not routed yet, so the drain below also waits for
        # routing to catch up (what one portal's sustained rate left behind).
        unrouted = metrics.get('openlines_unrouted{portal="down0"}')

        await stage.sink.reset()
        await stage.sink.up("down0")
        drained = await stage.wait_delivered(backlog["ok"], timeout_s=1800)
        seconds = (drained["last_event_ns"] - drained["first_event_ns"]) / 1e9
        return {
            "backlog_messages": backlog["ok"],
            "backlog_rate_per_s": sizes.backlog_rate,
            "outbox_depth_before_drain": depth,
            "unrouted_before_drain": unrouted,
            "drain_seconds": round(seconds, 1),
            "drain_per_s": round(drained["messages"] / seconds) if seconds > 0 else None,
            "drain_check": delivery_check(backlog["ok"], drained),
            "other_portals_rate_per_s": sizes.other_portals_rate,
            "other_portals_latency_ms_before": before["watched_latency_ms"],
            "other_portals_latency_ms_during": during["watched_latency_ms"],
            "other_portals_sent_before": before_load["ok"],
            "other_portals_check": delivery_check(during_load["ok"], during),
            "memory_mb_after": stage.memory_mb(),
        }
    finally:
        await stage.stop()


async def routing(sizes: Sizes) -> dict[str, Any]:
    """Routing's own figures, in this process without Ray (``bench.routing``)."""
    from bench.routing import measure_routing  # in-process, no Ray

    return await measure_routing(
        lines=50, operators=1000, dialogs=sizes.routing_dialogs, quick=sizes == QUICK
    )


async def throughput_routing_on_off(sizes: Sizes) -> dict[str, Any]:
    """The maximum rate of ``throughput_and_latency`` twice, each on a fresh engine: routing
    off (no rules, new dialogs only queue) and on (full rules, every dialog assigned)."""
    off = await _maximum_rate(sizes, routing=False)
    on = await _maximum_rate(sizes, routing=True)
    ratio = on["requests_per_s"] / off["requests_per_s"] if off["requests_per_s"] else None
    return {
        "off": off,
        "on": on,
        "portals": sizes.portals_for_throughput,
        "operators_per_portal": ROUTING_OPERATORS_PER_PORTAL,
        "on_off_ratio": None if ratio is None else round(ratio, 3),
        "on_off_ratio_to_target": None if ratio is None else round(ratio / ON_OFF_TARGET, 3),
        "target_on_off_ratio": ON_OFF_TARGET,
    }


def write_stage_rules(stage: Stage, chats: int) -> Layout:
    """Full rules for the stage's line of every portal, open from now, written where the
    engine reads them at start: one line, ``ROUTING_OPERATORS_PER_PORTAL`` operators, and
    room for all ``chats`` of the run on any one portal, so no dialog waits."""
    layout = Layout(lines=1, operators=ROUTING_OPERATORS_PER_PORTAL, names=(LINE,))
    capacity = roomy_capacity(layout, chats)
    write_rules(stage.workdir / "rules", layout, capacity, time.time(), stage.portals)
    return layout


async def _maximum_rate(sizes: Sizes, routing: bool) -> dict[str, Any]:
    stage = Stage(portal_ids(sizes.portals_for_throughput), pool_size=sizes.throughput_pool_size)
    layout = write_stage_rules(stage, WARM_UP["chats"] + sizes.chats) if routing else None
    await stage.start()
    try:
        if layout is not None:
            for portal_id in stage.portals:
                await operators_online(
                    stage.url, portal_id, license_key(portal_id), layout.all_operators()
                )
        warm_up = await stage.load("mixed", portals=len(stage.portals), **WARM_UP)
        # Delivered (and routed) before the reset: no event of the warm-up counts below.
        await stage.wait_delivered(warm_up["ok"], timeout_s=120)
        warm_up_dialogs = await _dialog_events(stage, routing)
        await stage.sink.reset()
        result = await stage.load(
            "mixed",
            portals=len(stage.portals),
            connections=sizes.connections,
            chats=sizes.chats,
            duration_s=sizes.duration_s,
        )
        stats = await stage.wait_delivered(result["ok"])
        dialogs = await _dialog_events(stage, routing)
        return {
            "routing": routing,
            "requests_per_s": result["requests_per_s"],
            "load": result,
            "check": delivery_check(result["ok"], stats),
            "dialogs": dialogs,
            "warm_up_dialogs": warm_up_dialogs,
            "latency_ms": stats["latency_ms"],
            "memory_mb": stage.memory_mb(),
        }
    finally:
        await stage.stop()


async def _dialog_events(stage: Stage, routing: bool, timeout_s: float = 30.0) -> dict[str, Any]:
    """New dialogs (``dialog.queued``) and assignments (``dialog.assigned``) the portals got.

    With routing on, every queued dialog must be assigned, or the "on" figure measured an
    engine that routed nothing; assignments may trail the last message, so they are waited
    for. With routing off, none may be.
    """
    deadline = time.perf_counter() + timeout_s
    while True:
        types = (await stage.sink.stats())["event_types"]
        queued = types.get("dialog.queued", 0)
        assigned = types.get("dialog.assigned", 0)
        if not routing or assigned >= queued or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.2)
    return {
        "queued": queued,
        "assigned": assigned,
        "routed_as_expected": (queued > 0 and assigned == queued) if routing else assigned == 0,
        "event_types": types,
    }


async def closed_loop(sizes: Sizes) -> dict[str, Any]:
    """The bare floor, the careful relay and the engine (1 and 2 channel actors) under the
    same closed-loop Telegram load (``bench.closed_loop``)."""
    from bench.closed_loop import LoadShape
    from bench.closed_loop import closed_loop as run_closed_loop

    shape = LoadShape(
        connections=sizes.closed_loop_connections,
        chats=sizes.chats,
        warm_up_s=sizes.closed_loop_warm_up_s,
        steady_s=sizes.closed_loop_steady_s,
    )
    profile_dir = Path(sizes.profile_dir) if sizes.profile_dir else None
    return await run_closed_loop(shape, sizes.closed_loop_channel_actors, profile_dir)


async def naive_baseline(sizes: Sizes) -> dict[str, Any]:
    """The obvious design (one Ray call and one commit per message) under the same load."""
    from bench.naive import start_naive, stop_naive

    workdir = Path(tempfile.mkdtemp(prefix="olbench-naive-"))
    private, public = generate_portal_keypair()
    keys_path = workdir / "sink-keys.json"
    write_keys(keys_path, None, {"naive": private})
    sink = SinkClient()
    await sink.start(0, keys_path)
    port = free_port()
    handle = await start_naive(
        port,
        sink.endpoint("naive"),
        "naive",
        public,
        workdir / "data",
        secret_token=TelegramWebhooks.SECRET_TOKEN,
    )
    try:
        await sink.set_engine_key(handle.engine_public_key)
        result = await spawn(
            f"http://127.0.0.1:{port}",
            "telegram",
            "naive",
            connections=sizes.connections,
            chats=sizes.chats,
            duration_s=sizes.duration_s,
        )
        stats = await sink.stats()
        assert sink.process is not None
        return {
            "load": result,
            "check": delivery_check(result["ok"], stats),
            "latency_ms": stats["latency_ms"],
            "sink_mb": process_uss_mb(sink.process.pid),
        }
    finally:
        await stop_naive(handle)
        await sink.stop()


def passed(results: dict[str, Any]) -> list[str]:
    """Names of checks that failed: messages lost, duplicated or reordered; dialogs that
    were not routed as the run expected."""
    failures = []
    throughput = results.get("throughput_and_latency")
    if throughput:
        if not check_passed(throughput["maximum"]["check"]):
            failures.append("throughput")
        failures += [
            f"latency@{r['fraction_of_max']}"
            for r in throughput["at_rates"]
            if not check_passed(r["check"])
        ]
    scale = results.get("scale_in_portals")
    if scale:
        failures += [
            f"scale@{r['portals']}"
            for r in scale["pooled"] + scale["actor_per_portal"]
            if not check_passed(r["check"])
        ]
    outage = results.get("outage_and_drain")
    if outage:
        if not check_passed(outage["drain_check"]):
            failures.append("drain")
        if not check_passed(outage["other_portals_check"]):
            failures.append("outage_others")
    on_off = results.get("throughput_routing_on_off")
    if on_off:
        for name in ("off", "on"):
            if not check_passed(on_off[name]["check"]):
                failures.append(f"routing_{name}")
            if not on_off[name]["dialogs"]["routed_as_expected"]:
                failures.append(f"routing_{name}_dialogs")
    closed = results.get("closed_loop")
    if closed:
        from bench.closed_loop import failures as closed_loop_failures

        failures += closed_loop_failures(closed)
    widget = results.get("widget_connections")
    if widget:
        if not widget["idle"]["passed"]:
            failures.append("widget_idle_connections")
        if widget["messages"]["delivered_to_portal"] < widget["messages"]["messages"]:
            failures.append("widget_delivery")
    return failures


async def widget_connections(sizes: Sizes) -> dict[str, Any]:
    """Idle live widget connections per channel actor, their memory, and the message rate
    through the widget path (``bench.widget_connections``)."""
    from bench.widget_connections import scenario

    return await scenario(sizes.widget_visitors, sizes.widget_senders, sizes.widget_send_s)


SCENARIOS = {
    "floor": floor,
    "throughput_and_latency": throughput_and_latency,
    "scale_in_portals": scale_in_portals,
    "outage_and_drain": outage_and_drain,
    "routing": routing,
    "throughput_routing_on_off": throughput_routing_on_off,
    "closed_loop": closed_loop,
    "naive_baseline": naive_baseline,
    "widget_connections": widget_connections,
}
