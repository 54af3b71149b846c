"""The registry as channel actor 0 hosts it, without Ray: a first start that cannot open
refuses the engine's start, a restart recovers by itself (calls wait, then get 503, until
it does), and the rules folder is watched for as long as the host lives."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from engine import registry_host
from engine.clock import ManualClock
from engine.errors import UnavailableError
from engine.rate_ledger import Consumed
from engine.registry_host import REGISTRY_CALLS, RegistryHost
from tests.engine.conftest import eventually, write_rules
from tests.engine.test_registry_service import RULES, config

DEADLINE_S = 20.0
"""How long a test waits for the host's background task (it runs on real time)."""


@pytest.fixture(autouse=True)
def _rules(tmp_path: Path) -> None:
    write_rules(tmp_path / "rules", RULES)


def block_the_store(tmp_path: Path) -> Path:
    """Put a folder where the registry's SQLite file is (opening it fails); returns where
    the file was moved."""
    store = tmp_path / "data" / "registry.sqlite3"
    kept = tmp_path / "kept.sqlite3"
    if store.exists():
        store.rename(kept)
    store.mkdir()
    return kept


async def test_a_first_start_whose_store_cannot_open_refuses_the_start(tmp_path: Path) -> None:
    engine_config = config(tmp_path)
    block_the_store(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
        RegistryHost(engine_config, ManualClock(0.0), restarted=False)


async def test_a_restart_recovers_by_itself_refusing_calls_until_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_host, "READY_WAIT_S", 0.2)
    engine_config = config(tmp_path)
    first = RegistryHost(engine_config, ManualClock(0.0), restarted=False)
    assert await first.ready() == 1 and await first.ping() == "registry"
    await first.close()
    kept = block_the_store(tmp_path)

    again = RegistryHost(engine_config, ManualClock(0.0), restarted=True)  # never raises

    with pytest.raises(UnavailableError, match="recovering"):
        await again.ping()  # at once
    with pytest.raises(UnavailableError, match="recovering"):
        await again.registry()  # after READY_WAIT_S
    with pytest.raises(UnavailableError):
        await again.stats()  # /metrics: the registry is down
    shutil.rmtree(tmp_path / "data" / "registry.sqlite3")
    kept.rename(tmp_path / "data" / "registry.sqlite3")

    monkeypatch.setattr(registry_host, "READY_WAIT_S", DEADLINE_S)
    assert await again.ready() == 1  # waits for the retried recovery
    assert await again.ping() == "registry"
    assert (await again.registry()).portals.keys() == {"p1"}
    assert await again.rules_status() == (2, None)  # continued, newer than the last
    _, gauges = await again.stats()
    assert gauges[("openlines_rules_version", ())] == 2.0
    await again.close()


async def test_the_rules_folder_is_watched_and_the_watch_outlives_a_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_host, "RULES_POLL_S", 0.02)
    host = RegistryHost(config(tmp_path), ManualClock(0.0), restarted=False)
    edited = {"p1-support.yaml": RULES["p1-support.yaml"] + "    - operator: b\n"}
    write_rules(tmp_path / "rules", edited)

    assert (await host.rules_after(1, DEADLINE_S)).version == 2  # taken by the watch
    # A read that fails outside the rules' own checks (here: the registry's store thread,
    # which reads the folder, is gone) is counted, and the watch goes on.
    await host._service.close()

    failed = host._counters
    await eventually(
        lambda: failed.value("openlines_rules_reload_failed_total") >= 2,
        DEADLINE_S,
        "the watch failing, counted, and trying again",
    )
    assert not host._task.done()
    await host.close()


async def test_the_rate_ledger_runs_on_the_clock_its_host_moves(tmp_path: Path) -> None:
    """One clock for the host actor and its registry: the actor moves it once (the admin
    API's ``advance_clock``), the registry's own ``advance_clock`` must not move it again."""
    clock = ManualClock(0.0)
    host = RegistryHost(config(tmp_path), clock, restarted=False)
    assert await host.rate_exchange({"w": Consumed(50.0, 60)}) == {"w": 10.0}
    await host.advance_clock(30.0)
    assert clock.now() == 0.0
    await clock.advance(30.0)  # half a minute: 30 tokens back
    assert await host.rate_exchange({"w": Consumed(1.0, 60)}) == {"w": 39.0}
    await host.close()


def test_the_calls_other_processes_make_are_its_public_coroutines() -> None:
    assert {"edge_after", "hosted_after", "rules_after", "put_portal", "ping", "stats"} <= (
        REGISTRY_CALLS
    )
    assert "close" not in REGISTRY_CALLS and "_ready" not in REGISTRY_CALLS
