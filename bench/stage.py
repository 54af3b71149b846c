"""A benchmark stage: the engine under test, portal sinks and load, wired on loopback.

``Stage`` starts a sink standing in for the portals and an engine (a real ``openlines
run`` subprocess) configured with those portals and one connector per channel and portal,
and measures what every process spends. Scenarios (``bench.scenarios``) combine stages.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.engine_proc import EngineProcess, cpu_delta
from bench.loadgen import spawn
from bench.sink import SinkClient, write_keys
from bench.webhooks import webhooks_for
from engine.security.keys import generate_portal_keypair

CHANNELS = ("telegram", "vk", "viber")
LINE = "support"


def portal_ids(count: int, prefix: str = "p") -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


def license_key(portal_id: str) -> str:
    """The license key a stage configures for a portal: what signs its API calls."""
    return f"bench-license-{portal_id}-0000"


def process_cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def process_uss_mb(pid: int) -> float:
    try:
        return round(psutil.Process(pid).memory_full_info().uss / 1e6, 1)
    except psutil.NoSuchProcess:
        return 0.0


@dataclass
class Stage:
    portals: list[str]
    channels: tuple[str, ...] = CHANNELS
    pool_size: int = 0
    channel_actors: int = 2
    portal_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_defaults: dict[str, Any] = field(default_factory=dict)
    engine_overrides: dict[str, Any] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="olbench-")))
    sink: SinkClient = field(default_factory=SinkClient)
    engine: EngineProcess | None = None
    run_id: int = 0
    started_in_s: float = 0.0
    public_keys: dict[str, str] = field(default_factory=dict)
    """Each portal's X25519 public key, as configured in the engine."""

    def next_run_id(self) -> int:
        """Each load run gets fresh ids, so the engine never drops it as duplicates."""
        self.run_id += 1
        return self.run_id

    def engine_config(self, public_keys: dict[str, str]) -> dict[str, Any]:
        portals = []
        for portal_id in self.portals:
            portal = {
                "id": portal_id,
                "endpoint": self.sink.endpoint(portal_id),
                "public_key": public_keys[portal_id],
                "license_key": license_key(portal_id),
                "retry_initial_s": 0.2,
                "retry_max_s": 2.0,
                "lines": [{"id": LINE}],
                **self.portal_defaults,
                **self.portal_overrides.get(portal_id, {}),
            }
            portals.append(portal)
        connectors = [
            webhooks_for(channel).connector_config(f"{portal_id}-{channel}", portal_id, LINE)
            for portal_id in self.portals
            for channel in self.channels
        ]
        (self.workdir / "rules").mkdir(exist_ok=True)
        return {
            "port": 0,
            "data_dir": str(self.workdir / "data"),
            "rules_dir": str(self.workdir / "rules"),
            "channel_actors": self.channel_actors,
            "portal_pool_size": self.pool_size,
            "portals": portals,
            "connectors": connectors,
            **self.engine_overrides,
        }

    async def start(self) -> None:
        keys = {portal_id: generate_portal_keypair() for portal_id in self.portals}
        keys_path = self.workdir / "sink-keys.json"
        write_keys(keys_path, None, {pid: private for pid, (private, _) in keys.items()})
        await self.sink.start(0, keys_path)
        self.public_keys = {pid: public for pid, (_, public) in keys.items()}
        config = self.engine_config(self.public_keys)
        self.engine = EngineProcess(config, self.workdir)
        began = time.perf_counter()
        await self.engine.start(timeout_s=900)
        self.started_in_s = time.perf_counter() - began
        await self.sink.set_engine_key(self.engine.engine_key)

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        await self.sink.stop()

    @property
    def url(self) -> str:
        assert self.engine is not None
        return self.engine.base_url

    async def delivery_floor(self, seconds: float, concurrency: int = 100) -> dict[str, Any]:
        """``bench.delivery_floor`` against this stage's sink, its portals and the engine's
        own signing key: single-event batches as fast as one process can seal and post them."""
        keys_path = self.workdir / "floor-public-keys.json"
        keys_path.write_bytes(orjson.dumps(self.public_keys))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.delivery_floor",
            "--sink",
            self.sink.base_url,
            "--keys",
            str(keys_path),
            "--engine-key",
            str(self.workdir / "data" / "engine_ed25519.pem"),
            "--seconds",
            str(seconds),
            "--concurrency",
            str(concurrency),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the delivery floor failed ({process.returncode}): {out!r}")
        result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
        return result

    def sink_pid(self) -> int:
        assert self.sink.process is not None
        return self.sink.process.pid

    async def load(
        self,
        channel: str,
        portals: int | None = None,
        prefix: str = "p",
        **options: Any,
    ) -> dict[str, Any]:
        """Run the load generator against the engine, with CPU of every process alongside."""
        assert self.engine is not None
        engine_before = self.engine.cpu_seconds_by_role()
        sink_before = process_cpu_s(self.sink_pid())
        began = time.perf_counter()
        if portals is None:
            result = await spawn(
                self.url, channel, f"{prefix}0", run_id=self.next_run_id(), **options
            )
        else:
            result = await spawn(
                self.url, channel, prefix, portals=portals, run_id=self.next_run_id(), **options
            )
        seconds = time.perf_counter() - began
        result["cpu_percent_by_process"] = {
            **{
                f"engine:{k}": v
                for k, v in cpu_delta(
                    engine_before, self.engine.cpu_seconds_by_role(), seconds
                ).items()
            },
            "sink": round(100 * (process_cpu_s(self.sink_pid()) - sink_before) / seconds, 1),
            "loadgen": result.get("cpu_percent"),
        }
        return result

    def memory_mb(self) -> dict[str, float]:
        assert self.engine is not None
        memory = {f"engine:{k}": v for k, v in self.engine.memory_mb_by_role().items()}
        memory["sink"] = process_uss_mb(self.sink_pid())
        return memory

    async def wait_delivered(self, count: int, timeout_s: float = 600.0) -> dict[str, Any]:
        """``wait_delivered`` on this stage's sink."""
        return await wait_delivered(self.sink, count, timeout_s)


async def wait_delivered(sink: SinkClient, count: int, timeout_s: float = 600.0) -> dict[str, Any]:
    """Sink stats once ``count`` customer messages arrived, or at the deadline (then it is a
    loss). The engine's own events (``dialog.queued`` of each new conversation) come besides
    them."""
    deadline = time.perf_counter() + timeout_s
    stats = await sink.stats()
    while stats["messages"] < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        stats = await sink.stats()
    await asyncio.sleep(0.5)  # late duplicates, if any, would show now
    return await sink.stats()


def delivery_check(acked: int, stats: dict[str, Any]) -> dict[str, Any]:
    """Lost, duplicated, reordered: the run fails if any is not zero.

    Lost and duplicated count customers' messages, what the channels had acknowledged;
    order and ``seq`` cover every event, the engine's own too.
    """
    return {
        "acknowledged": acked,
        "delivered": stats["messages"],
        "lost": max(0, acked - stats["messages"]),
        "duplicates": stats["message_duplicates"],
        "order_violations": stats["order_violations"],
        "seq_problems": stats["seq_problems"],
    }


def check_passed(check: dict[str, Any]) -> bool:
    return all(
        check[key] == 0 for key in ("lost", "duplicates", "order_violations", "seq_problems")
    )
