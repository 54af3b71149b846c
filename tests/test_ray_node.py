"""The engine's own Ray node: only the processes the engine uses, a keeper without Ray in the
foreground, the actors' output in the engine's log, and nothing left behind when the raylet
dies (actors/ray_node.py, actors/keeper.py)."""

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
        assert {"keeper", "gcs_server", "raylet", "ChannelActor", "PortalActor"} <= set(roles)
        assert "driver" not in roles
        keeper = processes[0]
        assert keeper.pid == engine.process.pid, "the driver became the keeper in place"
        assert {"gcs_server", "raylet"} == {role_of(child) for child in keeper.children()}
        mapped = {Path(region.path).name for region in keeper.memory_maps()}
        assert "_raylet.so" not in mapped, "the keeper holds no Ray"
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
        # Without its raylet the engine cannot serve: the keeper says so and exits 1, for a
        # service manager to start it again, leaving no process and no temp folder.
        assert await asyncio.wait_for(engine.process.wait(), 60) == 1
        assert any("raylet" in line and "cannot serve" in line for line in engine.output)
        assert not any(alive(p.pid) for p in processes)
        assert not ray_temp_dir(Path(config["data_dir"])).exists()
    finally:
        await engine.kill()
        ray_dir = ray_temp_dir(Path(config["data_dir"]))
        kill_leftovers(ray_dir)
        remove_ray_temp_dir(ray_dir)
