"""``openlines rules simulate``: replay traffic against a rule file, no engine, simulated time.

A manager tries a rule change before saving it: the same ``Dispatcher`` the engine runs,
fed a recorded or hand-written sequence of arrivals, operator status changes and actions
(one JSON object per line), with time moving only as the traffic says. Offers reach the
portal at once (``portal_delay_s`` later if given), timers fire as time passes, and every
event the portal would receive is printed with the decision behind it.

Traffic lines (``at``: seconds from the start, or an ISO 8601 time)::

    {"at": 0, "event": "status", "operator": "anna", "status": "online", "work_day": "started"}
    {"at": 5, "event": "message", "chat": "42"}
    {"at": 9, "event": "accept", "chat": "42", "operator": "anna"}
    {"at": 20, "event": "skip", "chat": "43", "operator": "boris"}
    {"at": 30, "event": "answer", "chat": "42", "operator": "anna"}
    {"at": 60, "event": "finish", "chat": "42"}
    {"at": 0, "event": "responsible", "chat": "42", "operator": "anna"}
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from engine.config import ID_PATTERN
from engine.errors import ConfigError, ConflictError, NotFoundError
from engine.models import Frozen
from engine.routing.dispatcher import Dispatcher
from engine.routing.plan import CustomerOwners, Plan
from engine.routing.rules import LineRules, PortalRules
from engine.routing.state import Board
from engine.store.records import Conversation, InboxRow
from engine.validation import describe_validation_error

CONNECTOR = "sim"
MAX_TIMER_STEPS = 100_000


class _Step(Frozen):
    at: float | datetime = Field(description="Seconds from the start, or an ISO 8601 time.")


class MessageStep(_Step):
    event: Literal["message"]
    chat: str = Field(min_length=1, max_length=200, description="The customer's chat.")
    line: str | None = Field(default=None, pattern=ID_PATTERN, description="Default: the file's.")


class StatusStep(_Step):
    event: Literal["status"]
    operator: str = Field(pattern=ID_PATTERN)
    status: Literal["online", "away", "offline", "vacation"] | None = None
    work_day: Literal["started", "ended"] | None = None


class ActionStep(_Step):
    event: Literal["accept", "skip", "answer", "finish", "responsible"]
    chat: str = Field(min_length=1, max_length=200)
    operator: str | None = Field(default=None, pattern=ID_PATTERN)


Step = Annotated[MessageStep | StatusStep | ActionStep, Field(discriminator="event")]
_STEP = TypeAdapter(Step)


def parse_traffic(lines: Iterable[str], source: str) -> list[MessageStep | StatusStep | ActionStep]:
    """Every line validated; ``ConfigError`` naming each bad line and field."""
    steps: list[MessageStep | StatusStep | ActionStep] = []
    errors: list[str] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            steps.append(_STEP.validate_python(orjson.loads(text)))
        except orjson.JSONDecodeError as exc:
            errors.append(f"{source}:{number}: not JSON: {exc}")
        except ValidationError as exc:
            errors.append(f"{source}:{number}: {describe_validation_error(exc)}")
    if errors:
        raise ConfigError("\n".join(errors))
    return steps


@dataclass
class Simulation:
    """The dispatcher of one portal with the given lines, driven by traffic."""

    lines: list[LineRules]
    start_s: float
    portal_delay_s: float = 0.0

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        rules = PortalRules(1, {line.line: line for line in self.lines})
        self.dispatcher = Dispatcher(
            "sim", Board(), rules, ids=lambda prefix: f"{prefix}_{next(counter)}"
        )
        self.now = self.start_s
        self.customers: dict[str, CustomerOwners] = {}
        self.pending_offers: list[tuple[float, list[str]]] = []
        self._rows = itertools.count(1)

    def run(
        self, steps: list[MessageStep | StatusStep | ActionStep], tail_s: float
    ) -> Iterator[str]:
        """Apply the steps in time order; then let ``tail_s`` pass. Yields printed lines."""
        timed = sorted(
            ((self._at(step), index, step) for index, step in enumerate(steps)),
            key=lambda item: (item[0], item[1]),
        )
        for at, _, step in timed:
            yield from self._until(at)
            yield from self._apply(step)
        if timed or tail_s:
            yield from self._until(max(self.now, timed[-1][0] if timed else self.now) + tail_s)

    def _at(self, step: _Step) -> float:
        if isinstance(step.at, datetime):
            if step.at.tzinfo is None:
                raise ConfigError(f"time {step.at.isoformat()} has no time zone")
            return step.at.timestamp()
        return self.start_s + step.at

    def _until(self, target: float) -> Iterator[str]:
        """Fire every timer and offer delivery that falls due before ``target``."""
        for _ in range(MAX_TIMER_STEPS):
            due = self._next_due()
            if due is None or due > target:
                break
            self.now = max(self.now, due)
            arrived = [ids for at, ids in self.pending_offers if at <= self.now]
            self.pending_offers = [(at, ids) for at, ids in self.pending_offers if at > self.now]
            for ids in arrived:
                self.dispatcher.offers_reached(ids, self.now)
            board = self.dispatcher.board
            dialogs = [
                d.dialog_id
                for d in board.dialogs.values()
                if (t := self.dispatcher.deadline(d)) is not None and t <= self.now
            ]
            lines = [line for line, at in self.dispatcher.wakeups.items() if at <= self.now]
            self.dispatcher.fire(dialogs, lines, self.now)
            yield from self._report()
        self.now = max(self.now, target)

    def _next_due(self) -> float | None:
        times = [at for at, _ in self.pending_offers]
        times.extend(self.dispatcher.wakeups.values())
        for dialog in self.dispatcher.board.dialogs.values():
            deadline = self.dispatcher.deadline(dialog)
            if deadline is not None:
                times.append(deadline)
        return min(times) if times else None

    def _dialog_id(self, chat: str) -> str:
        return self.dispatcher.board.open_by_ref.get(
            f"{CONNECTOR}\x00{chat}", f"(no open dialog of chat {chat})"
        )

    def _apply(self, step: MessageStep | StatusStep | ActionStep) -> Iterator[str]:
        dispatcher = self.dispatcher
        try:
            if isinstance(step, MessageStep):
                self._message(step)
            elif isinstance(step, StatusStep):
                current = dispatcher.board.operator(step.operator)
                working = current.working if step.work_day is None else step.work_day == "started"
                dispatcher.set_operator(
                    step.operator, step.status or current.status, working, self.now
                )
            elif step.event == "responsible":
                identity = f"{CONNECTOR}/{step.chat}"
                dispatcher.set_owner(
                    identity, step.operator, self.customers.get(identity), self.now
                )
            elif step.event == "finish":
                dispatcher.finish(self._dialog_id(step.chat), self.now, step.operator)
            elif step.event == "answer":
                dispatcher.answered(self._dialog_id(step.chat), step.operator, self.now)
            elif step.operator is None:
                raise ConflictError(f"{step.event} needs an operator")
            elif step.event == "accept":
                dispatcher.accept(self._dialog_id(step.chat), step.operator, self.now)
            else:
                dispatcher.skip(self._dialog_id(step.chat), step.operator, self.now)
        except (ConflictError, NotFoundError) as exc:
            yield f"{self._clock()} refused {step.event}: {exc}"
        yield from self._report()

    def _message(self, step: MessageStep) -> None:
        line = step.line or self.lines[0].line
        rowid = next(self._rows)
        row = InboxRow(
            rowid,
            f"msg_{rowid}",
            "message.received",
            Conversation(line, CONNECTOR, "simulated", step.chat, step.chat),
            rowid,
            self.now,
        )
        self.dispatcher.arrive([row], self.customers, {}, self.now)

    def _report(self) -> Iterator[str]:
        plan = self.dispatcher.take_plan()
        self.customers.update(plan.customers)
        offers = [e.event_id for e in plan.entries if e.kind == "dialog.offered"]
        if offers:
            self.pending_offers.append((self.now + self.portal_delay_s, offers))
        yield from describe_plan(plan, self._clock())

    def _clock(self) -> str:
        return f"+{self.now - self.start_s:>8.1f}s"


def describe_plan(plan: Plan, clock: str) -> Iterator[str]:
    """One line per event the portal would receive, with the decisions' explanations."""
    decisions = {d.decision_id: d for d in plan.decisions}
    for entry in plan.entries:
        view = orjson.loads(entry.dialog_json)
        chat = entry.dialog_ref.split("\x00", 1)[-1]
        data = orjson.loads(entry.data.model_dump_json()) if entry.data is not None else {}
        details = ", ".join(
            f"{k}={v}" for k, v in data.items() if k != "decision_id" and v is not None
        )
        yield f"{clock} chat {chat} {view['id']} [{view['state']}] {entry.kind} {details}".rstrip()
        decision = decisions.get(str(data.get("decision_id")))
        if decision is not None and decision.skipped:
            skipped = ", ".join(f"{op}: {why}" for op, why in decision.skipped.items())
            chosen = list(decision.operator_ids)
            yield f"{' ' * len(clock)}   why: chosen {chosen}; skipped {skipped}"
    for notice in plan.notices:
        yield f"{clock} text to the customer of {notice.dialog_id}: {notice.text!r}"
