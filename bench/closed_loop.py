"""Closed-loop ingest: a fixed number of connections, each waiting for its answer.

Providers hold a fixed number of connections (Telegram 40 per bot) and send a connection's
next update only once the previous one was answered, so what they get through is
connections ÷ time to acknowledge (DESIGN.md, invariant 1). The same load (real-format,
secret-token-verified Telegram webhooks; ``connections`` connections, a chat's messages in
order on one connection) goes to each system in turn, on 127.0.0.1, each with its own
portal sink that verifies and opens every batch:

* ``floor``: the bare aiohttp server (``bench.floor_server``): no verification, no storage;
* ``careful``: the careful single-process relay (``bench.careful``);
* ``engine_1ch``, ``engine_2ch``: the engine (``openlines run``) with one portal and one or
  two channel actors.

Per system, over a steady window after a warm-up: answered and delivered per second (what
the sink verified), acknowledgement p50/p99 (from writing a webhook to reading its answer),
cores used (CPU seconds of every process of the system ÷ wall seconds), memory (PSS) by
process role, ``ratio_to_floor`` and the delivery check (no loss, no duplicate, in order).
For the relay and the engine, webhook-to-portal latency at half the rate each reached; for
the engine, its memory at rest before any load. The engine's figures are set against the
targets of issue 7 (``TARGETS``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from bench.careful import CarefulProcess
from bench.engine_proc import memory_mb, role_of
from bench.loadgen import REPO_ROOT, spawn
from bench.pyspy import record
from bench.sink import SinkClient, write_keys
from bench.stage import Stage, check_passed, delivery_check, wait_delivered
from bench.webhooks import TelegramWebhooks
from engine.security.keys import generate_portal_keypair

CHANNEL = "telegram"
LEAD_S = 1.5
"""Time for the load generator to start and connect before its first request."""
REST_S = 3.0
"""How long a started engine is left alone before its memory at rest is read."""
RAY_ROLES = ("raylet", "gcs_server", "DashboardAgent", "RuntimeEnvAgent")
"""Ray's own processes, besides the `ray_*` roles (`engine_proc.role_of`)."""
PROFILED_ROLES = ("ChannelActor", "PortalActor", "relay")


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    value_key: str
    threshold: float | None
    """None: the careful relay's figure of the same run."""
    at_least: bool


TARGETS = (
    Target(
        "delivered_vs_careful",
        "delivered msg/s ≥ the careful relay's",
        "throughput_per_s",
        None,
        True,
    ),
    Target("ratio_to_floor", "delivered msg/s ≥ 0.5 of the floor", "ratio_to_floor", 0.5, True),
    Target("ack_p99_ms", "acknowledgement p99 < 10 ms", "ack_p99_ms", 10.0, False),
    Target(
        "half_rate_p99_ms",
        "webhook-to-portal p99 < 100 ms at half the rate",
        "half_rate_p99_ms",
        100.0,
        False,
    ),
    Target("rest_pss_mb", "engine at rest < 300 MB (PSS)", "rest_pss_mb", 300.0, False),
)


@dataclass(frozen=True)
class LoadShape:
    connections: int
    chats: int
    warm_up_s: float
    steady_s: float


class System(Protocol):
    """One system under the load: where it listens and which processes are its own."""

    name: str
    url: str
    prefix: str
    """The load generator's connector prefix."""
    sink: SinkClient | None

    async def start(self) -> None: ...

    def processes(self) -> list[tuple[str, psutil.Process]]: ...

    def next_run_id(self) -> int: ...

    async def stop(self) -> None: ...


class Floor:
    name = "floor"
    prefix = "floor"
    sink: SinkClient | None = None

    async def start(self) -> None:
        self._server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.floor_server",
            "--port",
            "0",
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._server.stdout is not None
        ready = await asyncio.wait_for(self._server.stdout.readline(), 30)  # b"ready <port>"
        self.url = f"http://127.0.0.1:{int(ready.split()[1])}"

    def processes(self) -> list[tuple[str, psutil.Process]]:
        return [("floor_server", psutil.Process(self._server.pid))]

    def next_run_id(self) -> int:
        return 0

    async def stop(self) -> None:
        self._server.terminate()
        await self._server.wait()


class Careful:
    name = "careful"
    prefix = "careful"

    def __init__(self) -> None:
        self.sink: SinkClient | None = SinkClient()
        self._workdir = Path(tempfile.mkdtemp(prefix="olbench-careful-"))
        self._relay: CarefulProcess | None = None
        self._run_id = 0

    async def start(self) -> None:
        assert self.sink is not None
        private, public = generate_portal_keypair()
        keys_path = self._workdir / "sink-keys.json"
        write_keys(keys_path, None, {self.prefix: private})
        await self.sink.start(0, keys_path)
        self._relay = await CarefulProcess.start(
            self.sink.endpoint(self.prefix),
            self.prefix,
            public,
            self._workdir / "data",
            TelegramWebhooks.SECRET_TOKEN,
        )
        await self.sink.set_engine_key(self._relay.engine_key)
        self.url = self._relay.url

    def processes(self) -> list[tuple[str, psutil.Process]]:
        assert self._relay is not None
        return [("relay", psutil.Process(self._relay.process.pid))]

    def next_run_id(self) -> int:
        """Fresh ids per run: the relay keeps what it has seen and drops repeats."""
        self._run_id += 1
        return self._run_id

    async def stop(self) -> None:
        if self._relay is not None:
            await self._relay.stop()
        if self.sink is not None:
            await self.sink.stop()


class Engine:
    def __init__(self, channel_actors: int) -> None:
        self.name = f"engine_{channel_actors}ch"
        self.prefix = "p0"
        self.stage = Stage(["p0"], channels=(CHANNEL,), channel_actors=channel_actors)
        self.sink: SinkClient | None = self.stage.sink

    async def start(self) -> None:
        await self.stage.start()
        self.url = self.stage.url

    def processes(self) -> list[tuple[str, psutil.Process]]:
        assert self.stage.engine is not None
        return [(role_of(process), process) for process in self.stage.engine.tree()]

    def next_run_id(self) -> int:
        return self.stage.next_run_id()

    async def stop(self) -> None:
        await self.stage.stop()


@dataclass(frozen=True)
class Sample:
    """CPU seconds and the sink's count at one moment of a run."""

    cpu_s: dict[int, tuple[str, float]]
    """pid: (role, CPU seconds) of the system's processes."""
    sink_cpu_s: float
    loadgen_cpu_s: dict[int, float]
    machine_busy_s: float
    machine_steal_s: float
    messages: int
    sink_ns: int
    wall_s: float


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _loadgen() -> list[psutil.Process]:
    """This process's load generator children."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "bench.loadgen" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


async def _sample(system: System) -> Sample:
    stats = await system.sink.stats() if system.sink is not None else None
    sink_process = system.sink.process if system.sink is not None else None
    return Sample(
        cpu_s={process.pid: (role, _cpu_s(process)) for role, process in system.processes()},
        sink_cpu_s=_cpu_s(psutil.Process(sink_process.pid)) if sink_process else 0.0,
        loadgen_cpu_s={process.pid: _cpu_s(process) for process in _loadgen()},
        machine_busy_s=_machine_busy_s(),
        machine_steal_s=float(getattr(psutil.cpu_times(), "steal", 0.0)),
        messages=stats["messages"] if stats else 0,
        sink_ns=stats["now_ns"] if stats else 0,
        wall_s=time.perf_counter(),
    )


def _cores_by_role(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds per wall second by role; a process born in the window counts from 0."""
    seconds = after.wall_s - before.wall_s
    totals: dict[str, float] = {}
    for pid, (role, cpu_s) in after.cpu_s.items():
        spent = cpu_s - before.cpu_s.get(pid, (role, 0.0))[1]
        totals[role] = totals.get(role, 0.0) + spent / seconds
    return {role: round(cores, 3) for role, cores in sorted(totals.items())}


def memory_by_role(system: System) -> dict[str, float]:
    """PSS of the system's processes by role, in MB."""
    totals: dict[str, float] = {}
    for role, process in system.processes():
        if role != "gone":
            totals[role] = totals.get(role, 0.0) + memory_mb(process, "pss")
    return {role: round(mb, 1) for role, mb in sorted(totals.items())}


def grouped(by_role: dict[str, float]) -> dict[str, float]:
    """Ray's own processes summed as ``ray``, other roles as they are."""
    result: dict[str, float] = {}
    for role, value in by_role.items():
        key = "ray" if role in RAY_ROLES or role.startswith("ray_") else role
        result[key] = round(result.get(key, 0.0) + value, 3)
    return result


async def _sleep_until(wall_clock: float) -> None:
    await asyncio.sleep(max(0.0, wall_clock - time.time()))


def start_load(system: System, shape: LoadShape) -> tuple[float, asyncio.Task[Any]]:
    """The closed-loop load generators, starting together a moment from now."""
    start_at = time.time() + LEAD_S
    load = asyncio.create_task(
        spawn(
            system.url,
            CHANNEL,
            system.prefix,
            connections=shape.connections,
            chats=shape.chats,
            duration_s=shape.warm_up_s + shape.steady_s,
            warm_up_s=shape.warm_up_s,
            start_at=start_at,
            run_id=system.next_run_id(),
        )
    )
    return start_at, load


async def closed_loop_run(system: System, shape: LoadShape) -> dict[str, Any]:
    """The closed-loop load on a started system; figures of the steady window."""
    if system.sink is not None:
        await system.sink.reset()
    start_at, load = start_load(system, shape)
    await _sleep_until(start_at + shape.warm_up_s)
    before = await _sample(system)
    await _sleep_until(start_at + shape.warm_up_s + shape.steady_s)
    after = await _sample(system)
    memory = memory_by_role(system)
    sink_mb = (
        memory_mb(psutil.Process(system.sink.process.pid), "pss")
        if system.sink and system.sink.process
        else None
    )
    result = await load
    steady = result["steady"]
    seconds = after.wall_s - before.wall_s
    by_role = _cores_by_role(before, after)
    cores = sum(by_role.values())
    sink_cores = (after.sink_cpu_s - before.sink_cpu_s) / seconds
    loadgen_cores = (
        sum(
            cpu_s - before.loadgen_cpu_s.get(pid, 0.0) for pid, cpu_s in after.loadgen_cpu_s.items()
        )
        / seconds
    )
    machine_cores = (after.machine_busy_s - before.machine_busy_s) / seconds
    figures: dict[str, Any] = {
        "answered_per_s": steady["requests_per_s"],
        "delivered_per_s": None,
        "ack_ms": steady["ack_ms"],
        "ack_p99_ms": steady["ack_ms"]["p99"],
        "cores_used": round(cores, 3),
        "cores_by_role": grouped(by_role),
        "cores_by_process_role": by_role,
        "sink_cores": round(sink_cores, 3),
        "loadgen_cores": round(loadgen_cores, 3),
        "machine_cores_busy": round(machine_cores, 3),
        "other_cores": round(max(0.0, machine_cores - cores - sink_cores - loadgen_cores), 3),
        "steal_cores": round((after.machine_steal_s - before.machine_steal_s) / seconds, 3),
        "memory_pss_mb": round(sum(memory.values()), 1),
        "memory_pss_mb_by_role": grouped(memory),
        "memory_pss_mb_by_process_role": memory,
        "sink_pss_mb": None if sink_mb is None else round(sink_mb, 1),
        "load": result,
    }
    if system.sink is not None:
        sink_s = (after.sink_ns - before.sink_ns) / 1e9
        figures["delivered_per_s"] = round((after.messages - before.messages) / sink_s, 1)
        stats = await wait_delivered(system.sink, result["ok"], timeout_s=120)
        figures["check"] = delivery_check(result["ok"], stats)
        figures["delivery_latency_ms"] = stats["latency_ms"]
    figures["throughput_per_s"] = figures["delivered_per_s"] or figures["answered_per_s"]
    return figures


async def half_rate_run(system: System, rate: float, shape: LoadShape) -> dict[str, Any]:
    """Webhook-to-portal latency with the load paced at ``rate`` (open loop per connection)."""
    assert system.sink is not None
    await system.sink.reset()
    result = await spawn(
        system.url,
        CHANNEL,
        system.prefix,
        connections=shape.connections,
        chats=shape.chats,
        duration_s=shape.steady_s,
        rate=rate,
        run_id=system.next_run_id(),
    )
    stats = await wait_delivered(system.sink, result["ok"], timeout_s=120)
    return {
        "offered_per_s": round(rate, 1),
        "achieved_per_s": result["requests_per_s"],
        "latency_ms": stats["latency_ms"],
        "ack_ms": result["ack_ms"],
        "check": delivery_check(result["ok"], stats),
        "errors": result["errors"],
    }


async def profile_run(system: System, shape: LoadShape, out_dir: Path) -> dict[str, Any]:
    """A separate closed-loop pass with py-spy on the system's busiest processes (so the
    measured figures are not slowed by the sampler)."""
    start_at, load = start_load(system, shape)
    await _sleep_until(start_at + shape.warm_up_s)
    targets = {
        f"{role}-{process.pid}": process.pid
        for role, process in system.processes()
        if role in PROFILED_ROLES
    }
    profiles = await record(targets, shape.steady_s - 1.0, out_dir / system.name)
    await load
    return profiles


async def measure(system: System, shape: LoadShape, profile_dir: Path | None) -> dict[str, Any]:
    """Start the system, take its figures, stop it."""
    await system.start()
    try:
        figures: dict[str, Any] = {}
        if isinstance(system, Engine):
            await asyncio.sleep(REST_S)  # start-up done: actors idle, buffers settled
        rest = memory_by_role(system)
        if rest:
            figures["rest_pss_mb"] = round(sum(rest.values()), 1)
            figures["rest_pss_mb_by_role"] = grouped(rest)
            figures["rest_pss_mb_by_process_role"] = rest
        figures.update(await closed_loop_run(system, shape))
        if system.sink is not None and figures["throughput_per_s"]:
            half = await half_rate_run(system, figures["throughput_per_s"] / 2, shape)
            figures["half_rate"] = half
            figures["half_rate_p99_ms"] = half["latency_ms"]["p99"]
        if profile_dir is not None:
            figures["profile"] = await profile_run(system, shape, profile_dir)
        return figures
    finally:
        await system.stop()


def judge(row: dict[str, Any], careful: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The engine row against ``TARGETS``: value, target, ratio to it and whether it is met."""
    judged = []
    for target in TARGETS:
        value = row.get(target.value_key)
        threshold = target.threshold
        if threshold is None:
            threshold = (careful or {}).get(target.value_key)
        if value is None or not threshold:
            met, ratio = None, None
        else:
            ratio = round(value / threshold, 3)
            met = value >= threshold if target.at_least else value < threshold
        judged.append(
            {
                "name": target.name,
                "what": target.what,
                "value": value,
                "target": threshold,
                "at_least": target.at_least,
                "ratio_to_target": ratio,
                "met": met,
            }
        )
    return judged


async def closed_loop(
    shape: LoadShape, channel_actors: tuple[int, ...], profile_dir: Path | None = None
) -> dict[str, Any]:
    systems: list[System] = [Floor(), Careful(), *(Engine(n) for n in channel_actors)]
    rows: dict[str, dict[str, Any]] = {}
    for system in systems:
        try:
            rows[system.name] = await measure(system, shape, profile_dir)
        except Exception as error:  # one system's failure: the others are still measured
            rows[system.name] = {"error": f"{type(error).__name__}: {error}"}
    floor = rows.get("floor", {}).get("throughput_per_s")
    careful = rows.get("careful")
    for row in rows.values():
        if floor and row.get("throughput_per_s"):
            row["ratio_to_floor"] = round(row["throughput_per_s"] / floor, 3)
        if careful and careful.get("throughput_per_s") and row.get("throughput_per_s"):
            row["ratio_to_careful"] = round(
                row["throughput_per_s"] / careful["throughput_per_s"], 3
            )
    targets = {name: judge(row, careful) for name, row in rows.items() if name.startswith("engine")}
    return {
        "channel": CHANNEL,
        "connections": shape.connections,
        "chats": shape.chats,
        "warm_up_s": shape.warm_up_s,
        "steady_s": shape.steady_s,
        "systems": rows,
        "targets": targets,
    }


def failures(result: dict[str, Any]) -> list[str]:
    """Systems that failed to run, lost or reordered messages, or got errors or refusals."""
    failed = []
    for name, row in result["systems"].items():
        load = row.get("load", {})
        if (
            "error" in row
            or load.get("errors", 0)
            or load.get("ok") != load.get("sent")
            or ("check" in row and not check_passed(row["check"]))
            or ("half_rate" in row and not check_passed(row["half_rate"]["check"]))
        ):
            failed.append(f"closed_loop:{name}")
    return failed
