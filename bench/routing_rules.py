"""Routing rules for the benchmarks: a layout of lines and operators, written as YAML.

The routing bench (``bench.routing``) loads these files in-process; the end-to-end run with
routing on (``bench.scenarios.throughput_routing_on_off``) writes them into the engine's
``rules_dir`` and puts the operators online through the portal API (``operators_online``).

The rules have every part on: weekday split shifts in a real zone with public holidays,
operators with their own hours (one per line outside them), capacities per line and across
lines, timers, unavailability rules, CRM owners, queue positions, groups, and backup operators
from the next line. Hours are written so that the run's own clock is inside them (an
exceptional working day is added when it would not be), so the figures do not depend on when
the bench runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.portal_side import PortalSide
from engine.routing.hours import HoursConfig
from engine.routing.rules import RuleSet, load_rules

PORTAL_ID = "bench"
"""The portal of the in-process routing bench."""
LINE_ZONE = "Europe/Berlin"
OPERATOR_ZONE = "Asia/Yekaterinburg"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
OPEN_MARGIN_S = 3 * 3600.0
"""The hours written stay open at least this long after the run starts."""
BACKUPS_PER_LINE = 2
"""Operators of the next line at the end of each queue: freed capacity serves two lines."""


@dataclass(frozen=True)
class Layout:
    """``operators`` distinct operators, ``operators // lines`` of them on each line."""

    lines: int
    operators: int
    names: tuple[str, ...] = ()
    """Line ids, when they must match a portal's config; otherwise ``line-00``, ..."""

    @property
    def per_line(self) -> int:
        return self.operators // self.lines

    def line_id(self, line: int) -> str:
        return self.names[line] if self.names else f"line-{line:02d}"

    def own(self, line: int) -> list[str]:
        return [f"op-{line:02d}-{n:02d}" for n in range(self.per_line)]

    def backups(self, line: int) -> list[str]:
        return self.own((line + 1) % self.lines)[:BACKUPS_PER_LINE] if self.lines > 1 else []

    def off_shift(self, line: int) -> str | None:
        """The operator whose own hours are later in the day: never available in the run."""
        return self.own(line)[-1] if self.per_line >= 4 else None

    def on_shift(self, line: int) -> list[str]:
        return [op for op in self.own(line) if op != self.off_shift(line)]

    def all_operators(self) -> list[str]:
        return [op for line in range(self.lines) for op in self.own(line)]

    def available(self) -> int:
        """Operators who take dialogs once online."""
        return sum(len(self.on_shift(line)) for line in range(self.lines))


def hours_open_at(
    zone: str, weekly: dict[str, list[str]], at_s: float, country: str | None = None
) -> dict[str, Any]:
    """Working hours as written, open from ``at_s`` for ``OPEN_MARGIN_S`` at least: where
    the weekly table or a holiday says otherwise, an exceptional working day around it."""
    hours: dict[str, Any] = {"timezone": zone, "weekly": weekly}
    if country is not None:
        hours["country_holidays"] = country
    if _open_long_enough(hours, at_s):
        return hours
    local = datetime.fromtimestamp(at_s, ZoneInfo(zone))
    start_h = max(0, local.hour - 1)
    day_range = f"{start_h:02d}:00-{(start_h + 8) % 24:02d}:00"
    hours["working_days"] = {local.date().isoformat(): [day_range]}
    if not _open_long_enough(hours, at_s):
        raise RuntimeError(f"routing bench: hours {hours} are not open at {at_s}")
    return hours


def _open_long_enough(hours: dict[str, Any], at_s: float) -> bool:
    schedule = HoursConfig.model_validate(hours).compile()
    closing = schedule.next_closing(at_s)
    return schedule.is_open(at_s) and (closing is None or closing >= at_s + OPEN_MARGIN_S)


def later_shift(zone: str, at_s: float) -> dict[str, Any]:
    """Every day from 5 to 9 hours after ``at_s``: closed for the whole run."""
    start_h = (datetime.fromtimestamp(at_s, ZoneInfo(zone)).hour + 5) % 24
    return {
        "timezone": zone,
        "weekly": {day: [f"{start_h:02d}:00-{(start_h + 4) % 24:02d}:00"] for day in ALL_DAYS},
    }


def line_document(
    layout: Layout, line: int, at_s: float, capacity: int, portal_id: str = PORTAL_ID
) -> dict[str, Any]:
    """One line's rules with every part on; every decision is an assignment
    (``require_accept: false``), so a decision and a ``dialog.assigned`` are one thing."""
    own = layout.own(line)
    members = [{"group": "seniors"}] + [{"operator": op} for op in own[3:] + layout.backups(line)]
    daytime = {day: ["06:00-22:00"] for day in ALL_DAYS}
    operators: dict[str, Any] = {
        op: {"hours": hours_open_at(OPERATOR_ZONE, daytime, at_s)}
        for n, op in enumerate(own)
        if n % 4 == 1
    }
    off_shift = layout.off_shift(line)
    if off_shift is not None:
        operators[off_shift] = {"hours": later_shift(OPERATOR_ZONE, at_s)}
    split_shifts = {day: ["08:00-13:00", "14:00-19:00"] for day in WEEKDAYS}
    return {
        "portal": portal_id,
        "line": layout.line_id(line),
        "priority": line % 3,
        "groups": {"seniors": own[:3]},
        "queue": {
            "members": members,
            "distribution": "strictly" if line % 5 == 4 else "evenly",
            "require_accept": False,
        },
        "capacity": {"max_dialogs_per_operator": capacity, "max_dialogs_across_lines": capacity},
        "timers": {
            "no_answer_timeout_s": 3600,
            "no_answer_text": "Sorry for the wait: another operator will answer you.",
            "no_operator_timeout_s": 3600,
            "no_operator_text": "All our operators are busy; we answer as soon as we can.",
        },
        "hours": hours_open_at(LINE_ZONE, split_shifts, at_s, country="DE"),
        "outside_hours": {"text": "We open {opens_at}."},
        "require_work_day": True,
        "unavailable": {
            "offline": {"action": "return", "grace_s": 300},
            "end_of_day": {"action": "return", "customer_text": "A colleague will continue."},
        },
        "crm": {"chain": ["responsible", "last_operator", "queue"]},
        "queue_position": {"on_join": True},
        "operators": operators,
    }


def write_rules(
    rules_dir: Path,
    layout: Layout,
    capacity: int,
    at_s: float,
    portal_ids: Sequence[str] = (PORTAL_ID,),
) -> None:
    """One YAML file per portal and line, open at ``at_s``: what ``openlines run`` reads."""
    rules_dir.mkdir(parents=True, exist_ok=True)
    for portal_id in portal_ids:
        for line in range(layout.lines):
            document = line_document(layout, line, at_s, capacity, portal_id)
            path = rules_dir / f"{portal_id}-{layout.line_id(line)}.yaml"
            path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


async def operators_online(
    base_url: str, portal_id: str, license_key: str, operator_ids: Sequence[str]
) -> None:
    """Every operator online with the work day started, through the engine's portal API
    (``PUT /api/v1/operators/{id}/status``, signed as the portal signs it)."""
    signer = PortalSide(
        portal_id,
        X25519PrivateKey.generate(),  # signing API calls uses only the license key
        Ed25519PrivateKey.generate().public_key(),
        license_key,
    )
    body = json.dumps({"status": "online", "work_day": "started"}).encode()
    async with aiohttp.ClientSession() as session:
        for operator_id in operator_ids:
            path = f"/api/v1/operators/{operator_id}/status"
            headers = {"content-type": "application/json", **signer.sign_request("PUT", path, body)}
            async with session.put(base_url + path, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    raise RuntimeError(
                        f"routing bench: {operator_id} online: HTTP {response.status}: "
                        f"{await response.text()}"
                    )


def bench_rules(workdir: Path, name: str, layout: Layout, capacity: int) -> tuple[RuleSet, Path]:
    """Rules written as files and read by the engine's own loader, open from now on."""
    rules_dir = workdir / name
    write_rules(rules_dir, layout, capacity, time.time())
    return load_rules(rules_dir, 1), rules_dir


def backlog_capacity(layout: Layout, waiting: int) -> int:
    """Half the backlog is assigned as operators come online, half as they finish dialogs."""
    return max(1, round(waiting / (2 * layout.available())))


def roomy_capacity(layout: Layout, dialogs: int) -> int:
    """Enough for ``dialogs`` new conversations to be assigned on arrival."""
    return math.ceil(dialogs / layout.available()) + 1
