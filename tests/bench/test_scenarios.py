"""What the routing on/off scenario sets up and judges, without starting the engine.

The engine run itself is ``python -m bench --only throughput_routing_on_off``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import report
from bench.routing import inbox_row
from bench.scenarios import QUICK, WARM_UP, passed, write_stage_rules
from bench.stage import LINE, Stage, portal_ids
from engine.config import parse_engine_config
from engine.routing.dispatcher import Dispatcher
from engine.routing.portal_router import INBOX_BATCH
from engine.routing.rules import load_rules
from engine.routing.state import Board
from engine.security.keys import generate_portal_keypair


def test_the_stage_rules_give_every_chat_of_the_run_an_operator(tmp_path: Path) -> None:
    stage = Stage(portal_ids(3), workdir=tmp_path)
    chats = WARM_UP["chats"] + QUICK.chats
    layout = write_stage_rules(stage, chats)
    keys = {portal_id: generate_portal_keypair()[1] for portal_id in stage.portals}
    config = parse_engine_config(stage.engine_config(keys), "stage")
    rules = load_rules(Path(config.rules_dir), 1)
    assert sorted(rules.lines) == [(portal_id, LINE) for portal_id in stage.portals]

    # Every chat of the run on one portal, as the engine's dispatcher routes it.
    now = time.time()
    dispatcher = Dispatcher("p1", Board(), rules.for_portal("p1"))
    for operator_id in layout.all_operators():
        dispatcher.set_operator(operator_id, "online", True, now)
    rows = [inbox_row(layout, "s", n, now) for n in range(chats)]
    for start in range(0, chats, INBOX_BATCH):
        dispatcher.arrive(rows[start : start + INBOX_BATCH], {}, {}, now)
    assert len(dispatcher.take_plan().decisions) == chats
    assert not any(dialog.state == "waiting" for dialog in dispatcher.board.dialogs.values())


def run(requests_per_s: float, queued: int, assigned: int, routed: bool) -> dict[str, Any]:
    check = {"acknowledged": 10, "delivered": 10, "lost": 0, "duplicates": 0}
    return {
        "requests_per_s": requests_per_s,
        "check": {**check, "order_violations": 0, "seq_problems": 0},
        "dialogs": {"queued": queued, "assigned": assigned, "routed_as_expected": routed},
    }


def on_off(on: dict[str, Any]) -> dict[str, Any]:
    return {
        "off": run(1000.0, 40, 0, True),
        "on": on,
        "portals": 10,
        "operators_per_portal": 20,
        "on_off_ratio": 0.95,
        "target_on_off_ratio": 0.9,
    }


def test_an_on_run_that_routed_nothing_fails() -> None:
    assert passed({"throughput_routing_on_off": on_off(run(950.0, 40, 40, True))}) == []
    failed = on_off(run(990.0, 40, 0, False))
    assert passed({"throughput_routing_on_off": failed}) == ["routing_on_dialogs"]


def test_the_table_and_the_ratios_show_both_runs() -> None:
    results: dict[str, Any] = {"floor": {"requests_per_s": 5000.0}}
    results["throughput_routing_on_off"] = on_off(run(950.0, 40, 40, True))
    report.add_ratios(results)
    runs = results["throughput_routing_on_off"]
    assert (runs["on"]["ratio_to_floor"], runs["off"]["ratio_to_floor"]) == (0.19, 0.2)
    row = report.table(results).splitlines()[3]
    assert row == (
        "| end-to-end with routing on / off, 10 portals, 20 operators each | "
        "950.0 / 1000.0 msg/s (ratio 0.95; 40 of 40 dialogs assigned) | ≥ 0.9 |"
    )


def test_the_drain_row_says_how_much_was_still_to_route() -> None:
    def drain_row(**unrouted: float) -> str:
        outage = {
            "backlog_messages": 1_000_000,
            "drain_per_s": 13222,
            "drain_check": {"order_violations": 0},
            "other_portals_latency_ms_before": {"p99": 1.0},
            "other_portals_latency_ms_during": {"p99": 2.0},
            **unrouted,
        }
        table = report.table({"outage_and_drain": outage})
        return next(line for line in table.splitlines() if "drain of" in line)

    assert drain_row(unrouted_before_drain=294464.0) == (
        "| drain of 1,000,000 messages to one portal | 13,222 msg/s, in order: yes; "
        "294,464 of them not yet routed at its start | ≥ 20,000 msg/s |"
    )
    assert "routed" not in drain_row()  # results from before the gauge existed
