"""The engine's own Ray node: only the processes the engine uses, the actors' output in the
engine's log, and nothing left behind when the raylet dies (actors/ray_node.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bench.engine_proc import EngineProcess, role_of
from engine.runtime import kill_leftovers, ray_temp_dir, remove_ray_temp_dir
from tests.custom_client import custom_connector
from tests.harness import engine_config_data
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.slow

NOT_STARTED = {
    "ray_dashboard",
    "ray_monitor",
    "ray_log_monitor",
    "DashboardAgent",
    "RuntimeEnvAgent",
}


async def until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def test_the_engine_runs_only_the_ray_processes_it_uses_and_shows_the_actors_logs(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    config = engine_config_data(tmp_path, [portal.portal_config()], [custom_connector()])
    engine = EngineProcess(config, tmp_path)
    await engine.start(timeout_s=120)
    try:
        processes = engine.tree()
        roles = [role_of(process) for process in processes]
        assert not NOT_STARTED & set(roles), roles
        assert {"driver", "gcs_server", "raylet", "ChannelActor", "PortalActor"} <= set(roles)
        raylet = next(p for p in processes if role_of(p) == "raylet")
        placeholders = [p for p in processes if role_of(p) == "ray_agent_placeholder"]
        assert len(placeholders) == 2
        assert all(p.ppid() == raylet.pid for p in placeholders)
        assert all(psutil.Process(p.pid).memory_info().rss < 5e6 for p in placeholders)

        def channel_logged() -> bool:
            for line in engine.output:
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry["logger"] == "actors.channel" and "listening" in entry["msg"]:
                        return True
            return False

        await until(channel_logged, "a channel actor's log line, as JSON, in the engine's log")

        raylet.send_signal(signal.SIGKILL)
        gone = [p.pid for p in placeholders]
        await until(
            lambda: not any(alive(pid) for pid in gone),
            "the placeholder agents ending with their raylet",
        )
    finally:
        await engine.kill()
        ray_dir = ray_temp_dir(Path(config["data_dir"]))
        kill_leftovers(ray_dir)
        remove_ray_temp_dir(ray_dir)
