"""The closed-loop scenario's parts that run without the engine: the careful relay end to end
against the real sink, the load generator's acknowledgement times and steady window against
the floor server, and how figures are judged and reported.

The engine rows themselves come from ``python -m bench --only floor closed_loop``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench import report
from bench.careful import CarefulProcess
from bench.closed_loop import (
    Careful,
    Floor,
    LoadShape,
    closed_loop_run,
    failures,
    grouped,
    judge,
)
from bench.floor_server import start_floor_server
from bench.histogram import LatencyHistogram
from bench.loadgen import combine, run_load
from bench.sink import SinkClient, write_keys
from bench.stage import wait_delivered
from bench.webhooks import TelegramWebhooks
from engine.security.keys import generate_portal_keypair

PORTAL = "careful"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[CarefulProcess, SinkClient]]:
    private, public = generate_portal_keypair()
    keys = tmp_path / "keys.json"
    write_keys(keys, None, {PORTAL: private})
    sink = SinkClient()
    await sink.start(0, keys)
    try:
        process = await CarefulProcess.start(
            sink.endpoint(PORTAL), PORTAL, public, tmp_path / "data", TelegramWebhooks.SECRET_TOKEN
        )
        try:
            await sink.set_engine_key(process.engine_key)
            yield process, sink
        finally:
            assert await process.stop() == 0
    finally:
        await sink.stop()


async def test_the_careful_relay_delivers_every_message_once_and_in_order(
    relay: tuple[CarefulProcess, SinkClient],
) -> None:
    process, sink = relay
    result = await run_load(
        process.url, "telegram", PORTAL, connections=8, chats=40, duration_s=None, total=400
    )
    assert (result["sent"], result["ok"], result["errors"]) == (400, 400, 0)
    stats = await wait_delivered(sink, 400, timeout_s=30)
    assert stats["messages"] == 400 and stats["rejected"] == 0
    assert stats["message_duplicates"] == stats["order_violations"] == stats["seq_problems"] == 0
    assert stats["latency_ms"]["count"] == 400
    assert stats["batches"] < 400  # batched, not one request per message


async def test_the_careful_relay_refuses_a_wrong_secret_and_stores_a_retry_once(
    relay: tuple[CarefulProcess, SinkClient],
) -> None:
    process, sink = relay
    headers, body = TelegramWebhooks().request(7, 7, 1, 1)
    url = f"{process.url}/hooks/telegram/any"
    async with aiohttp.ClientSession() as session:
        wrong = {**headers, "X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}
        async with session.post(url, data=body, headers=wrong) as response:
            assert response.status == 401
        for _ in range(2):  # Telegram's retry of an update it got no answer to
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200
        async with session.post(url, data=b"{not json", headers=headers) as response:
            assert response.status == 400
    stats = await wait_delivered(sink, 1, timeout_s=30)
    assert (stats["messages"], stats["message_duplicates"]) == (1, 0)


async def test_acknowledgement_times_and_the_steady_window() -> None:
    runner, port = await start_floor_server(0)
    try:
        result = await run_load(
            f"http://127.0.0.1:{port}",
            "telegram",
            "b",
            connections=4,
            chats=40,
            duration_s=0.6,
            warm_up_s=0.2,
        )
    finally:
        await runner.cleanup()
    steady, ack = result["steady"], result["ack_ms"]
    assert result["ok"] == result["sent"] == ack["count"] > steady["ok"] > 0
    assert steady["ack_ms"]["count"] == steady["sent"] == steady["ok"]
    assert 0 < ack["p50"] <= ack["p99"] <= ack["max"]
    assert 0.35 <= steady["seconds"] <= 0.45
    assert steady["requests_per_s"] == pytest.approx(steady["ok"] / steady["seconds"], rel=0.01)


def test_combined_results_merge_acknowledgement_histograms() -> None:
    fast, slow = LatencyHistogram(), LatencyHistogram()
    for _ in range(99):
        fast.add(1000)
    slow.add(50_000)

    def part(histogram: LatencyHistogram) -> dict[str, Any]:
        steady = {"sent": 1, "ok": 1, "seconds": 1.0, "ack_histogram": histogram.sparse()}
        return {
            "sent": 1,
            "ok": 1,
            "errors": 0,
            "status_counts": {"200": 1},
            "cpu_s": 0.1,
            "ack_histogram": histogram.sparse(),
            "steady": steady,
            "processes": 1,
            "started_at": 0.0,
            "ended_at": 1.0,
        }

    merged = combine([part(fast), part(slow)])
    assert merged["ack_ms"]["count"] == 100
    assert merged["ack_ms"]["p50"] == pytest.approx(1.0, rel=0.01)
    assert merged["ack_ms"]["max"] == 50.0
    assert merged["steady"]["ok"] == 2


@pytest.mark.parametrize("system", [Floor, Careful])
async def test_a_closed_loop_run_measures_the_steady_window(system: type[Floor | Careful]) -> None:
    under_test = system()
    await under_test.start()
    try:
        row = await closed_loop_run(under_test, LoadShape(4, 40, 0.3, 1.0))
    finally:
        await under_test.stop()
    assert row["throughput_per_s"] > 0 and row["ack_ms"]["count"] > 0
    assert 0 < row["cores_used"] <= 1.5
    assert row["memory_pss_mb"] > 10
    if under_test.sink is None:
        assert row["delivered_per_s"] is None
    else:
        assert row["delivered_per_s"] > 0
        assert row["check"]["lost"] == row["check"]["duplicates"] == 0
    assert failures({"systems": {under_test.name: row}}) == []


def engine_row(**figures: Any) -> dict[str, Any]:
    return {
        "throughput_per_s": 4000.0,
        "ratio_to_floor": 0.4,
        "ack_p99_ms": 8.0,
        "half_rate_p99_ms": 150.0,
        "rest_pss_mb": 250.0,
        **figures,
    }


def test_the_engine_is_judged_against_the_careful_relay_and_fixed_targets() -> None:
    judged = {t["name"]: t for t in judge(engine_row(), {"throughput_per_s": 5000.0})}
    assert judged["delivered_vs_careful"]["target"] == 5000.0
    assert judged["delivered_vs_careful"]["ratio_to_target"] == 0.8
    assert [name for name, t in judged.items() if t["met"]] == ["ack_p99_ms", "rest_pss_mb"]
    assert judged["half_rate_p99_ms"]["ratio_to_target"] == 1.5
    without_careful = judge(engine_row(), None)
    assert without_careful[0]["met"] is None and without_careful[0]["ratio_to_target"] is None


def test_rows_for_the_table_and_what_fails_the_run() -> None:
    check = {"lost": 0, "duplicates": 0, "order_violations": 0, "seq_problems": 0}
    row = {
        **engine_row(),
        "delivered_per_s": 4000.0,
        "ack_ms": {"p50": 3.0, "p99": 8.0},
        "cores_used": 1.2,
        "memory_pss_mb": 400.0,
        "memory_pss_mb_by_role": {"ray": 200.0, "driver": 80.0, "ChannelActor": 120.0},
        "rest_pss_mb_by_role": {"ray": 150.0, "driver": 100.0},
        "load": {"sent": 10, "ok": 10, "errors": 0},
        "check": check,
    }
    closed = {
        "connections": 32,
        "systems": {"engine_2ch": row, "careful": {"error": "RuntimeError: no"}},
        "targets": {"engine_2ch": judge(row, None)},
    }
    lines = report.closed_loop_rows(closed)
    assert "4,000 msg/s delivered (0.40 of floor), ack p50 / p99 3.0 / 8.0 ms" in lines[0]
    assert "(driver 80.0, channel 120.0, Ray 200.0)" in lines[0]
    assert lines[1].startswith("| closed loop, 32 connections: careful") and "failed" in lines[1]
    assert "250.0 MB (driver 100.0, Ray 150.0) | < 300 MB" in lines[2]
    assert "acknowledgement p99 < 10 ms: 8.00 vs 10.00 = 0.80 ✓" in lines[3]
    assert "at half the rate: 150 vs 100 = 1.50 ✗" in lines[3]
    assert failures(closed) == ["closed_loop:careful"]
    lossy = {**row, "check": {**check, "lost": 1}}
    assert failures({"systems": {"engine_2ch": lossy}}) == ["closed_loop:engine_2ch"]
    assert grouped({"raylet": 1.0, "ray_log_monitor": 2.0, "driver": 3.0}) == {
        "ray": 3.0,
        "driver": 3.0,
    }
