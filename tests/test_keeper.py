"""The keeper that replaces the driver once the actors run (actors/keeper.py).

Its wait is tested on real processes without Ray; the hand-over itself through
``openlines run`` (also in tests/test_ray_node.py and tests/test_restart.py).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.engine_proc import EngineProcess
from engine.runtime import ray_temp_dir
from tests.custom_client import custom_connector
from tests.harness import engine_config_data
from tests.standins.portal import PortalStandIn

WAITER = """
import signal, subprocess, sys
from actors.keeper import WATCHED_SIGNALS, wait_for_stop
signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED_SIGNALS)
node = {"gcs_server": subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL).pid,
        "raylet": subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL).pid}
print(node["gcs_server"], node["raylet"], flush=True)
print(wait_for_stop(node), flush=True)
"""


@pytest.fixture
def waiter() -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """A process waiting as the keeper does, its two "node" processes ``sleep``s."""
    process = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    node = [int(pid) for pid in process.stdout.readline().split()]
    yield process, node
    process.kill()
    for pid in node:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


def test_the_keeper_waits_for_a_stop_signal(
    waiter: tuple[subprocess.Popen[str], list[int]],
) -> None:
    process, _ = waiter
    process.send_signal(signal.SIGTERM)  # blocked there, so it waits for sigwait
    out, _ = process.communicate(timeout=30)
    assert out.strip() == "None"
    assert process.returncode == 0


def test_the_keeper_names_a_process_of_the_node_that_ended(
    waiter: tuple[subprocess.Popen[str], list[int]],
) -> None:
    process, (_, raylet) = waiter
    psutil.Process(raylet).kill()
    out, _ = process.communicate(timeout=30)
    assert out.strip() == f"raylet (pid {raylet})"


@pytest.mark.slow
async def test_a_stop_during_the_hand_over_stops_the_engine_cleanly(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    """SIGTERM as soon as the actors serve, while the driver hands over: whether the driver
    or the keeper takes it, the engine stops in order, exits 0 and leaves nothing."""
    config = engine_config_data(tmp_path, [portal.portal_config()], [custom_connector()])
    engine = EngineProcess(config, tmp_path)
    await engine.start(timeout_s=120, until="openlines: engine key")
    processes = engine.tree()
    assert await engine.stop() == 0
    assert "openlines: stopped\n" in engine.output
    assert not [p.pid for p in processes if p.is_running() and p.status() != "zombie"]
    assert not ray_temp_dir(Path(config["data_dir"])).exists()
