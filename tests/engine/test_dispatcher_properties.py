"""Routing stays safe whatever happens at once: a stateful hypothesis test against a model.

Random sequences of customers writing, operators changing status, accepting, skipping,
answering and finishing, declining, pinning, transferring, inviting and leaving, offers
reaching the portal and time passing. After every step: no operator over capacity, no
dialog held by two operators, every open dialog exactly one of waiting, offered, assigned or
answered, a pinned dialog held by its operator and no operator a participant of their own
dialog, the load index equal to a recount, nobody waiting while an operator could take
them, and every event's dialog stamp consistent with the events before it in the dialog's
stream.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.errors import ConflictError, NotFoundError
from engine.routing.choice import choose
from engine.routing.rules import LineRules
from tests.engine.routing_kit import Kit, line_rules

OPERATORS = ("a", "b", "c", "d")
CHATS = tuple(str(n) for n in range(8))
STATUSES = ("online", "online", "away", "offline", "vacation")


class Routing(RuleBasedStateMachine):
    kit: Kit
    lines: dict[str, LineRules]

    @initialize(
        distribution=st.sampled_from(["evenly", "strictly", "all"]),
        accept=st.booleans(),
        capacity=st.integers(1, 3),
        across=st.one_of(st.none(), st.integers(1, 4)),
        counted=st.sampled_from([("offered", "assigned", "answered"), ("assigned", "answered")]),
    )
    def start(
        self,
        distribution: str,
        accept: bool,
        capacity: int,
        across: int | None,
        counted: tuple[str, ...],
    ) -> None:
        common: dict[str, Any] = {
            "accept": accept,
            "queue": {"distribution": distribution},
            "capacity": {
                "max_dialogs_per_operator": capacity,
                "max_dialogs_across_lines": across,
                "counted_states": list(counted),
            },
            "timers": {"accept_timeout_s": 60, "no_answer_timeout_s": 300},
        }
        support = line_rules("support", ("a", "b", "c"), **common)
        sales = line_rules("sales", ("c", "d"), priority=5, **common)
        self.lines = {"support": support, "sales": sales}
        self.kit = Kit(support, sales)
        self.line_of = {chat: ("support" if int(chat) % 3 else "sales") for chat in CHATS}

    def _dialog_id(self, chat: str) -> str | None:
        dialog = self.kit.dialog_of(chat)
        return None if dialog is None else dialog.dialog_id

    @rule(chat=st.sampled_from(CHATS))
    def customer_writes(self, chat: str) -> None:
        self.kit.write(chat, self.line_of[chat])

    @rule(
        operator=st.sampled_from(OPERATORS), status=st.sampled_from(STATUSES), working=st.booleans()
    )
    def operator_status(self, operator: str, status: str, working: bool) -> None:
        self.kit.status(operator, status, working)

    @rule(chat=st.sampled_from(CHATS), operator=st.sampled_from(OPERATORS))
    def accept(self, chat: str, operator: str) -> None:
        self._act(
            lambda dialog_id: self.kit.dispatcher.accept(dialog_id, operator, self.kit.now), chat
        )

    @rule(chat=st.sampled_from(CHATS), operator=st.sampled_from(OPERATORS))
    def skip(self, chat: str, operator: str) -> None:
        self._act(
            lambda dialog_id: self.kit.dispatcher.skip(dialog_id, operator, self.kit.now), chat
        )

    @rule(chat=st.sampled_from(CHATS))
    def answer(self, chat: str) -> None:
        self._act(
            lambda dialog_id: self.kit.dispatcher.answered(dialog_id, None, self.kit.now), chat
        )

    @rule(chat=st.sampled_from(CHATS))
    def finish(self, chat: str) -> None:
        self._act(lambda dialog_id: self.kit.dispatcher.finish(dialog_id, self.kit.now), chat)

    @rule(chat=st.sampled_from(CHATS), spam=st.booleans())
    def decline(self, chat: str, spam: bool) -> None:
        workflow = self.kit.workflow
        self._act(
            lambda dialog_id: workflow.decline(dialog_id, self.kit.now, spam=spam, block=spam),
            chat,
        )

    @rule(chat=st.sampled_from(CHATS), pin=st.booleans())
    def pin_or_unpin(self, chat: str, pin: bool) -> None:
        act = self.kit.workflow.pin if pin else self.kit.workflow.unpin
        self._act(lambda dialog_id: act(dialog_id, self.kit.now), chat)

    @rule(chat=st.sampled_from(CHATS), operator=st.sampled_from(OPERATORS))
    def transfer_to_operator(self, chat: str, operator: str) -> None:
        workflow = self.kit.workflow
        self._act(
            lambda dialog_id: workflow.transfer_to_operator(dialog_id, operator, self.kit.now),
            chat,
        )

    @rule(chat=st.sampled_from(CHATS), line=st.sampled_from(["support", "sales"]))
    def transfer_to_line(self, chat: str, line: str) -> None:
        workflow = self.kit.workflow
        self._act(lambda dialog_id: workflow.transfer_to_line(dialog_id, line, self.kit.now), chat)

    @rule(chat=st.sampled_from(CHATS), operator=st.sampled_from(OPERATORS), join=st.booleans())
    def invite_or_leave(self, chat: str, operator: str, join: bool) -> None:
        workflow = self.kit.workflow
        if join:
            self._act(lambda dialog_id: workflow.invite(dialog_id, operator, self.kit.now), chat)
        else:
            self._act(lambda dialog_id: workflow.leave(dialog_id, operator, self.kit.now), chat)

    def _act(self, action: Any, chat: str) -> None:
        dialog_id = self._dialog_id(chat) or f"dlg_gone_{chat}"
        try:
            action(dialog_id)
        except (ConflictError, NotFoundError):
            assert not self.kit.dispatcher.take_plan()  # refused: nothing changed
        self.kit.collect()

    @rule()
    def offers_reach_the_portal(self) -> None:
        self.kit.reached()

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.kit.advance(seconds)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def states_have_their_shape(self) -> None:
        for dialog in self.kit.board.dialogs.values():
            if dialog.state == "waiting":
                assert dialog.operator_id is None and dialog.offered_to == ()
            elif dialog.state == "offered":
                assert dialog.operator_id is None and dialog.offered_to
                assert len(set(dialog.offered_to)) == len(dialog.offered_to)
            else:
                assert dialog.state in ("assigned", "answered")
                assert dialog.operator_id is not None and dialog.offered_to == ()

    @invariant()
    def pins_and_participants_have_their_shape(self) -> None:
        for dialog in self.kit.board.dialogs.values():
            if dialog.pinned:
                assert dialog.state in ("assigned", "answered") and dialog.operator_id
            operators = [operator for operator, _ in dialog.participants]
            assert dialog.operator_id not in operators
            assert len(set(operators)) == len(operators)

    @invariant()
    def one_open_dialog_per_conversation(self) -> None:
        board = self.kit.board
        assert len(board.open_by_ref) == len(board.dialogs)
        for ref, dialog_id in board.open_by_ref.items():
            assert board.dialogs[dialog_id].ref == ref

    @invariant()
    def load_index_equals_a_recount(self) -> None:
        recount: Counter[tuple[str, str, str]] = Counter()
        for dialog in self.kit.board.dialogs.values():
            for operator in dialog.holders:
                recount[(operator, dialog.line_id, dialog.state)] += 1
        for operator in OPERATORS:
            for line in self.lines:
                for state in ("offered", "assigned", "answered"):
                    assert (
                        self.kit.board.load(operator, (state,), line)
                        == recount[(operator, line, state)]
                    )

    @invariant()
    def nobody_over_capacity(self) -> None:
        for line, rules in self.lines.items():
            counted = rules.capacity.counted_states
            for operator in OPERATORS:
                assert (
                    self.kit.board.load(operator, counted, line)
                    <= rules.capacity.max_dialogs_per_operator
                )
                across = rules.capacity.max_dialogs_across_lines
                if across is not None:
                    assert self.kit.board.load(operator, counted, None) <= across

    @invariant()
    def nobody_waits_while_an_operator_could_take_them(self) -> None:
        board = self.kit.board
        for dialog in board.dialogs.values():
            if dialog.state == "waiting":
                choice = choose(dialog, self.lines[dialog.line_id], board, self.kit.now)
                assert choice.action == "wait", (dialog, choice)

    @invariant()
    def every_stamp_agrees_with_the_stream_before_it(self) -> None:
        holder: dict[str, str | None] = {}
        for entry in self.kit.entries:
            view = orjson.loads(entry.dialog_json)
            dialog_id = view["id"]
            data = orjson.loads(entry.data.model_dump_json()) if entry.data is not None else None
            if entry.kind == "dialog.assigned":
                assert data is not None and view["operator_id"] == data["operator_id"]
                holder[dialog_id] = data["operator_id"]
            elif entry.kind == "dialog.returned":
                assert data is not None and holder.get(dialog_id) == data["operator_id"]
                holder[dialog_id] = None
            elif entry.kind == "dialog.transferred":
                assert data is not None and data["from_line"] in self.lines
                holder[dialog_id] = None  # let go of, before the new line or operator
            elif entry.kind == "dialog.offered":
                assert data is not None and view["offered_to"] == data["operator_ids"]
            assert view["operator_id"] == holder.get(dialog_id), entry


TestRouting = Routing.TestCase
TestRouting.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
