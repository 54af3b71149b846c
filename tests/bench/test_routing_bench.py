"""The routing benchmark at tiny sizes: it runs and its counts add up.

No figure is checked against a target here: timings belong in the results JSON.
"""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.routing import RoutingSizes, measure_decisions, measure_routing
from bench.routing_rules import Layout

LAYOUT = Layout(lines=2, operators=8)
TINY = RoutingSizes(
    new_dialogs=12,
    max_rate_messages=16,
    max_rate_concurrency=4,
    paced_seconds=0.2,
    paced_messages_cap=16,
    memory_dialogs=(10, 30),
)


async def test_both_decision_flows_assign_every_dialog(tmp_path: Path) -> None:
    results = await measure_decisions(LAYOUT, 20, TINY, tmp_path)
    for driver in ("pure", "committed"):
        backlog = results[driver]["backlog"]
        assert backlog["decisions"] == 20
        assert backlog["left_waiting"] == 0
        assert backlog["online"]["steps"] == LAYOUT.operators
        assert backlog["online"]["decisions"] + backlog["finish"]["decisions"] == 20
        assert results[driver]["new_dialogs"]["decisions"] == TINY.new_dialogs


async def test_the_whole_scenario_reports_what_the_results_need() -> None:
    result = await measure_routing(lines=2, operators=8, dialogs=20, sizes=TINY)
    assert (result["lines"], result["operators"], result["waiting_dialogs"]) == (2, 8, 20)
    for name in (
        "decisions_per_s",
        "decisions_per_s_committed",
        "append_to_assigned_p99_ms",
        "memory_per_open_dialog_bytes",
    ):
        assert result[name] is not None, name
    assert set(result["batch_call_ms"]) == {"p50", "p95", "p99", "max"}
    latency = result["latency"]
    assert latency["maximum"]["messages"] == TINY.max_rate_messages
    assert latency["open_dialogs_at_end"] == TINY.max_rate_messages + latency["at_half"]["messages"]
    assert [board["dialogs"] for board in result["memory"]["boards"]] == [10, 30]
    rows = report.table({"routing": result}).splitlines()[2:5]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["≥ 20,000/s", "p99 < 50 ms", "—"]
