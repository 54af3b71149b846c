"""Driving the dispatcher directly: rules from dicts, arrivals, a clock in plain numbers.

The dispatcher is pure: every test here builds a board, feeds it inputs at chosen times and
reads the plan it wrote. No store, no Ray, no sleeping.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson

from engine.buttons.press import CustomerInput
from engine.routing.dispatcher import Dispatcher
from engine.routing.plan import ConsentAnswer, CustomerOwners, Notice, Plan, StreamEntry
from engine.routing.rules import LineRules, PortalRules
from engine.routing.state import Board, DialogState, OperatorState
from engine.routing.voice import Heard
from engine.routing.workflow import Workflow
from engine.store.records import Conversation, InboxRow

T0 = 1_800_000_000.0
"""Friday 2027-01-15 08:00 UTC: tests that care about weekdays say so."""


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def line_rules(
    line: str = "support",
    members: tuple[str, ...] = ("a", "b", "c"),
    accept: bool = False,
    **extra: Any,
) -> LineRules:
    """A line's rules: ``members`` in queue order; ``accept``: offers must be accepted."""
    base: dict[str, Any] = {
        "portal": "p1",
        "line": line,
        "queue": {"members": [{"operator": op} for op in members], "require_accept": accept},
    }
    return LineRules.model_validate(deep_merge(base, extra))


def portal_rules(*lines: LineRules, version: int = 1) -> PortalRules:
    return PortalRules(version, {rules.line: rules for rules in lines})


class Kit:
    """A dispatcher with deterministic ids, its plans gathered, time in ``now``.

    ``contacts``: every chat's customer is the CRM contact ``cnt_<chat>`` (what linking gives
    the router), so consent answers are stored with it."""

    def __init__(self, *lines: LineRules, contacts: bool = False) -> None:
        self._counter = itertools.count(1)
        self.dispatcher = self._dispatcher(Board(), portal_rules(*lines))
        self.workflow = Workflow(self.dispatcher)
        self.now = T0
        self.contacts = contacts
        self.entries: list[StreamEntry] = []
        self.texts: list[tuple[str, str]] = []
        self.said: list[Notice] = []
        """Every text of the line and its bot, with buttons and origin, in order."""
        self.customers: dict[str, CustomerOwners] = {}
        """What the store would hold of customers: the plans' CRM records."""
        self.lines_seen: set[tuple[str, str]] = set()
        self.consents: dict[str, ConsentAnswer] = {}
        """What the store would hold of contacts' consent, by contact id."""
        self.stored: dict[str, DialogState] = {}
        """What the store would hold of dialogs, open and closed, by id."""
        self.operators: dict[str, OperatorState] = {}
        self._rows = itertools.count(1)

    def _dispatcher(self, board: Board, rules: PortalRules) -> Dispatcher:
        counter = self._counter
        return Dispatcher(
            "p1",
            board,
            rules,
            ids=lambda prefix: f"{prefix}_{next(counter)}",
            line_name=lambda line_id: {"support": "Acme"}.get(line_id, line_id),
        )

    def restart(self) -> None:
        """A new dispatcher on what the store holds (every record through its JSON), as a
        restarted router loads it; then what fell due while it was down fires, once."""
        board = Board()
        for operator in self.operators.values():
            board.put_operator(operator)
        for dialog in self.stored.values():
            if dialog.state != "closed":
                board.put_dialog(DialogState.from_json(dialog.to_json()))
        self.dispatcher = self._dispatcher(board, self.dispatcher.rules)
        self.workflow = Workflow(self.dispatcher)
        self.advance(0)

    @property
    def board(self) -> Board:
        return self.dispatcher.board

    def collect(self) -> Plan:
        plan = self.dispatcher.take_plan()
        self.entries.extend(plan.entries)
        self.texts.extend((notice.dialog_id, notice.text) for notice in plan.notices)
        self.said.extend(plan.notices)
        self.customers.update(plan.customers)
        self.lines_seen.update(plan.lines_seen)
        self.consents.update(plan.consents)
        self.stored.update(plan.dialogs)
        self.operators.update(plan.operators)
        return plan

    def latest(self, chat: str) -> DialogState | None:
        """The chat's latest dialog, open or closed, as the store would find it."""
        ref = f"tg\x00{chat}"
        found = [d for d in self.stored.values() if d.ref == ref]
        return max(found, key=lambda d: d.opened_at, default=None)

    def write(
        self,
        chat: str,
        line: str = "support",
        kind: str = "message.received",
        owners: CustomerOwners | None = None,
        text: str | None = None,
        press: str | None = None,
        language: str | None = "en",
        opens_window: bool = False,
        address: str = "",
    ) -> DialogState | None:
        """The customer of ``chat`` writes; returns the chat's open dialog afterwards.

        ``owners`` is what the store knows of the customer (CRM) when a dialog opens.
        ``text`` and ``press`` (a button's payload) are what the message says, for lines
        that read it; ``language`` the customer's as their channel tells it;
        ``opens_window``: a channel event the provider counts as the customer writing;
        ``address`` what a reply needs, as stored with the message (JSON).
        """
        rowid = next(self._rows)
        row = InboxRow(
            rowid,
            f"msg_{rowid}",
            kind,
            Conversation(line, "tg", "telegram", chat, chat, address),
            rowid,
            self.now,
        )
        known = {owners.identity: owners} if owners else self.customers
        if owners is None and (found := self.owners_of(chat)) is not None:
            known = {**self.customers, f"tg/{chat}": found}
        latest = self.latest(chat)
        recent = {latest.ref: latest} if latest is not None else {}
        blocking = {
            identity: self.stored[block.dialog_id] for identity, block in self.board.blocked.items()
        }
        heard = None
        if text is not None or press is not None:
            heard = {rowid: Heard("Ann", language, CustomerInput(text=text, payload=press))}
        openers = {rowid} if opens_window else set()
        self.dispatcher.arrive([row], known, recent, self.now, blocking, heard, openers)
        self.collect()
        return self.dialog_of(chat)

    def owners_of(self, chat: str) -> CustomerOwners | None:
        """What the store would give routing for the chat's customer: with ``contacts``, the
        contact ``cnt_<chat>`` with its consent and the lines it had dialogs on."""
        contact = f"cnt_{chat}" if self.contacts else None
        identity = contact or f"tg/{chat}"
        lines = frozenset(line for who, line in self.lines_seen if who == identity)
        answer = self.consents.get(identity)
        kept = self.customers.get(identity)
        if kept is None and contact is None and not lines:
            return None
        consent = "unknown" if answer is None else "given" if answer.given else "declined"
        base = kept or CustomerOwners(identity, None, None)
        return replace(base, contact_id=contact, consent=consent, lines=lines)

    def dialog_of(self, chat: str) -> DialogState | None:
        dialog_id = self.board.open_by_ref.get(f"tg\x00{chat}")
        return None if dialog_id is None else self.board.dialogs[dialog_id]

    def online(self, *operators: str, working: bool = True) -> None:
        for operator in operators:
            self.dispatcher.set_operator(operator, "online", working, self.now)
        self.collect()

    def status(self, operator: str, status: str, working: bool = True) -> None:
        self.dispatcher.set_operator(operator, status, working, self.now)  # type: ignore[arg-type]
        self.collect()

    def advance(self, seconds: float) -> None:
        """Move time and fire whatever fell due, as the owner's timer loop does."""
        self.now += seconds
        due = [
            d.dialog_id
            for d in self.board.dialogs.values()
            if (t := self.dispatcher.deadline(d)) is not None and t <= self.now
        ]
        lines = [line for line, at in self.dispatcher.wakeups.items() if at <= self.now]
        self.dispatcher.fire(due, lines, self.now)
        self.collect()

    def reached(self) -> None:
        """Every open offer reached the portal now."""
        self.dispatcher.offers_reached(list(self.board.offers), self.now)
        self.collect()

    def types(self, chat: str | None = None) -> list[str]:
        return [e.kind for e in self.entries_of(chat)]

    def entries_of(self, chat: str | None) -> Iterator[StreamEntry]:
        for entry in self.entries:
            if chat is None or entry.dialog_ref == f"tg\x00{chat}":
                yield entry

    def data(self, kind: str, chat: str | None = None) -> list[dict[str, Any]]:
        return [
            orjson.loads(e.data.model_dump_json())
            for e in self.entries_of(chat)
            if e.kind == kind and e.data is not None
        ]

    def views(self, chat: str) -> list[dict[str, Any]]:
        return [orjson.loads(e.dialog_json) for e in self.entries_of(chat)]
