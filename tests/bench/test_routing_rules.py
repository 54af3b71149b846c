"""The benchmarks' routing rules: they load, their hours are open for the run, and the
operators come online through calls the engine's verifier accepts."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.routing_rules import (
    LINE_ZONE,
    Layout,
    hours_open_at,
    later_shift,
    operators_online,
    write_rules,
)
from engine.routing.hours import HoursConfig
from engine.routing.rules import load_rules
from engine.security.sealing import PORTAL_ID_HEADER
from engine.security.webhook_signature import api_request_payload, verify_hmac

LAYOUT = Layout(lines=2, operators=8)


def test_rules_load_and_name_every_operator(tmp_path: Path) -> None:
    write_rules(tmp_path, LAYOUT, capacity=2, at_s=time.time(), portal_ids=("p1", "p2"))
    rules = load_rules(tmp_path, 1)
    assert sorted(rules.lines) == [(p, f"line-0{n}") for p in ("p1", "p2") for n in (0, 1)]
    line = rules.for_line("p1", "line-00")
    assert line is not None
    assert line.queue_order == (*LAYOUT.own(0), *LAYOUT.backups(0))
    assert not line.queue.require_accept


@pytest.mark.parametrize(
    "local",
    [
        datetime(2027, 1, 13, 10, 30),  # Wednesday, inside the split shift
        datetime(2027, 1, 13, 13, 30),  # Wednesday lunch break
        datetime(2027, 1, 17, 3, 0),  # Sunday night
        datetime(2026, 12, 25, 11, 0),  # Christmas, a public holiday in Germany
    ],
)
def test_hours_are_open_when_the_run_starts(local: datetime) -> None:
    at_s = local.replace(tzinfo=ZoneInfo(LINE_ZONE)).timestamp()
    weekly = {day: ["08:00-13:00", "14:00-19:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    hours = HoursConfig.model_validate(hours_open_at(LINE_ZONE, weekly, at_s, "DE")).compile()
    assert hours.is_open(at_s)
    assert hours.is_open(at_s + 2 * 3600)


def test_the_later_shift_is_closed_for_the_run() -> None:
    at_s = time.time()
    hours = HoursConfig.model_validate(later_shift(LINE_ZONE, at_s)).compile()
    assert not any(hours.is_open(at_s + minutes * 60) for minutes in range(0, 240, 10))


async def test_operators_come_online_through_signed_api_calls() -> None:
    """What the end-to-end throughput run needs: calls the engine's verifier accepts."""
    seen: list[tuple[str, bytes]] = []

    async def status(request: web.Request) -> web.Response:
        body = await request.read()
        payload = api_request_payload(request.method, request.path_qs, body)
        verify_hmac(b"bench-license-p1-0000", request.headers, payload, time.time())
        assert request.headers[PORTAL_ID_HEADER] == "p1"
        seen.append((request.match_info["operator_id"], body))
        return web.json_response({})

    app = web.Application()
    app.router.add_put("/api/v1/operators/{operator_id}/status", status)
    async with TestServer(app, host="127.0.0.1") as server:
        base_url = str(server.make_url("")).rstrip("/")
        await operators_online(base_url, "p1", "bench-license-p1-0000", ["a", "b"])
    assert [operator for operator, _ in seen] == ["a", "b"]
    assert {orjson.loads(body)["work_day"] for _, body in seen} == {"started"}


def test_rules_for_the_stage_line_of_every_portal(tmp_path: Path) -> None:
    """The end-to-end run's rules: one line named as in the portals' config."""
    layout = Layout(lines=1, operators=20, names=("support",))
    write_rules(tmp_path, layout, capacity=20, at_s=time.time(), portal_ids=("p0", "p1"))
    line = load_rules(tmp_path, 1).for_line("p1", "support")
    assert line is not None
    assert len(line.queue_order) == 20
    assert line.operator_schedules["op-00-19"].is_open(time.time()) is False
