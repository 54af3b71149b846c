"""Choosing operators for one waiting dialog: a pure function of state, rules and time.

``choose`` returns what to do (offer, assign or wait), to whom, by which path (the queue,
the customer's responsible, their last operator) and why every other operator of the line
was passed over. The same inputs always give the same choice, so a decision can be
replayed and explained (``openlines rules explain``, ``rules simulate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.routing.rules import LineRules
from engine.routing.state import Board, DialogState

Action = Literal["offer", "assign", "wait"]
Path = Literal["queue", "responsible", "last_operator"]

STATUS_REASONS = {"offline": "offline", "away": "away", "vacation": "on_vacation"}


@dataclass(frozen=True, slots=True)
class Choice:
    action: Action
    operator_ids: tuple[str, ...] = ()
    path: Path = "queue"
    reason: str = ""
    """For a wait: why no operator was chosen."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Every operator of the line passed over, with the reason."""
    wake_at: float | None = None
    """For a wait that time alone ends (the line opening, the responsible's wait)."""
    wrapped: bool = False
    """Every available operator had been tried: the round starts again."""


def unavailable_reason(operator_id: str, line: LineRules, board: Board, now: float) -> str | None:
    """Why the operator cannot take a dialog of this line now, or None if they can."""
    operator = board.operator(operator_id)
    if operator.status != "online":
        return STATUS_REASONS[operator.status]
    if line.require_work_day and not operator.working:
        return "work_day_not_started"
    schedule = line.operator_schedules.get(operator_id)
    if schedule is not None and not schedule.is_open(now):
        return "outside_their_hours"
    capacity = line.capacity
    counted = capacity.counted_states
    if board.load(operator_id, counted, line.line) >= capacity.max_dialogs_per_operator:
        return "at_capacity"
    across = capacity.max_dialogs_across_lines
    if across is not None and board.load(operator_id, counted, None) >= across:
        return "at_capacity_across_lines"
    return None


def line_availability(line: LineRules, board: Board, now: float) -> dict[str, str | None]:
    """Every queue member's ``unavailable_reason``: the same for every dialog of the line,
    so routing a queue computes it once and updates only the operators it gave work to."""
    return {op: unavailable_reason(op, line, board, now) for op in line.queue_order}


def choose(
    dialog: DialogState,
    line: LineRules,
    board: Board,
    now: float,
    availability: dict[str, str | None] | None = None,
) -> Choice:
    """What to do with a waiting dialog now (``availability``: ``line_availability`` of
    this moment, when the caller has it)."""
    if not line.schedule.is_open(now):
        return Choice("wait", reason="outside_line_hours", wake_at=line.schedule.next_opening(now))
    if availability is None:
        availability = line_availability(line, board, now)
    skipped: dict[str, str] = {}
    available: list[str] = []
    tried: list[str] = []
    for operator_id, reason in availability.items():
        if reason is not None:
            skipped[operator_id] = reason
        elif operator_id in dialog.tried:
            tried.append(operator_id)
        else:
            available.append(operator_id)
    wrapped = not available and bool(tried)
    if wrapped:
        available = tried
    else:
        skipped.update((operator_id, "already_tried") for operator_id in tried)
    owner = _owner_choice(dialog, line, available, skipped, now)
    if owner is not None:
        return owner
    if not available:
        return Choice("wait", reason="no_available_operator", skipped=skipped)
    distribution = line.queue.distribution
    if distribution == "all":
        return Choice("offer", tuple(available), skipped=skipped, wrapped=wrapped)
    if distribution == "evenly":
        chosen = min(available, key=lambda op: board.operator(op).last_assigned_at)
    else:
        chosen = available[0]
    for operator_id in available:
        if operator_id != chosen:
            skipped[operator_id] = (
                "not_next" if distribution == "strictly" else "assigned_more_recently"
            )
    action: Action = "offer" if line.queue.require_accept else "assign"
    return Choice(action, (chosen,), skipped=skipped, wrapped=wrapped)


def _owner_choice(
    dialog: DialogState,
    line: LineRules,
    available: list[str],
    skipped: dict[str, str],
    now: float,
) -> Choice | None:
    """The CRM chain: the customer's responsible, then their last operator, then the queue."""
    for step in line.crm.chain:
        if step == "queue":
            return None
        target = dialog.responsible_id if step == "responsible" else dialog.last_operator_id
        if target is None or target not in line.queue_order:
            continue
        if target in available:
            others = {op: "not_the_owner" for op in available if op != target}
            action: Action = (
                "offer"
                if line.queue.require_accept or line.queue.distribution == "all"
                else "assign"
            )
            return Choice(action, (target,), path=step, skipped={**skipped, **others})
        wait_until = dialog.waiting_since + line.crm.wait_for_responsible_s
        if step == "responsible" and target not in dialog.tried and now < wait_until:
            # Waited for once; a responsible who let the offer pass is not waited for again.
            return Choice(
                "wait", reason="waiting_for_responsible", skipped=skipped, wake_at=wait_until
            )
    return None
