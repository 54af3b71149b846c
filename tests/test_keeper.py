"""The keeper that replaces the driver once the actors run (actors/keeper.py).

Its wait is tested on real processes without Ray; the hand-over itself through
``openlines run`` (also in tests/test_ray_node.py and tests/test_restart.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest

from bench.engine_proc import EngineProcess, holds_open
from engine.runtime import ray_temp_dir
from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import ADMIN_TOKEN, engine_config_data
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


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], method: str
) -> int:
    async with session.request(method, url, data=body, headers=headers) as response:
        await response.read()
        return response.status


@pytest.mark.slow
async def test_actors_made_and_restarted_after_the_hand_over_serve(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    """The driver's Ray job has ended: a portal added through the admin API gets its portal
    actor from a channel actor, and that actor, killed, is started again by Ray."""
    late = PortalStandIn.create("late")
    await late.start()
    config = engine_config_data(tmp_path, [portal.portal_config()], [])
    engine = EngineProcess(config, tmp_path)
    await engine.start(timeout_s=120)
    late.engine_public_key_b64 = engine.engine_key
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as session:
            for path, entry in (
                ("/admin/v1/portals/late", late.portal_config()),
                ("/admin/v1/connectors/late-shop", custom_connector("late-shop", "late")),
            ):
                assert (
                    await post(session, engine.base_url + path, orjson.dumps(entry), admin, "PUT")
                    == 200
                )

            async def send(seq: int) -> int:
                body, headers = signed_custom_request([custom_message("c", seq, f"m{seq}")])
                url = f"{engine.base_url}/hooks/custom/late-shop"
                return await post(session, url, body, headers, "POST")

            assert await send(1) == 200
            await late.wait_for_events(1, "message.")
            [actor] = [p for p in engine.tree() if holds_open(p, "portal-late.sqlite3")]
            actor.kill()
            deadline = time.monotonic() + 60
            for seq in (2, 3):
                while await send(seq) != 200:  # 503 while Ray starts it again
                    assert time.monotonic() < deadline, "the portal actor did not come back"
                    await asyncio.sleep(0.2)
            events = await late.wait_for_events(3, "message.")
            assert [e["data"]["content"]["text"] for e in events] == ["m1", "m2", "m3"]
    finally:
        assert await engine.stop() == 0
        await late.stop()
