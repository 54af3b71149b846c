"""One dialog's events into facts: episodes, first answers, misses, turns, attribution
(docs/statistics.md, "Definitions" and "Attribution")."""

from __future__ import annotations

from engine.stats.timeline import Fact, Timeline, facts_of
from tests.engine.stats.events import (
    answered,
    assigned,
    closed,
    message,
    queued,
    rated,
    reply,
    returned,
    transferred,
)


def kinds(facts: list[Fact]) -> list[tuple[str, str | None, str, float | None]]:
    return [(f.kind, f.operator_id, f.detail, f.value) for f in facts]


def test_an_answered_dialog_times_its_first_answer_and_each_later_turn() -> None:
    facts = facts_of(
        [
            queued(100),
            assigned(100, "anna"),
            message(99),  # written before the routing step that opened the dialog
            answered(130, "anna"),
            message(131),  # before the first answer's reply went out: its own turn is not timed
            reply(132, "anna"),
            message(140),
            message(150),  # the turn began at 140
            reply(170, None, holder="anna"),  # unnamed: the dialog's operator
            message(200),
            reply(201, "line-bot", origin="line"),  # the line's text answers nobody
            reply(260, "anna"),
            closed(300, "finished", "anna"),
        ]
    )
    assert kinds(facts) == [
        ("received", None, "new", None),
        ("assigned", "anna", "direct", None),
        ("answered", "anna", "", 30.0),
        ("replied", "anna", "", 30.0),
        ("replied", "anna", "", 60.0),
        ("closed", "anna", "finished", None),
    ]
    assert {f.line_id for f in facts} == {"support"}


def test_a_dialog_closed_without_an_answer_is_missed_for_its_line_and_operator() -> None:
    facts = facts_of(
        [queued(0), message(0), assigned(5, "boris"), closed(60, "operator_unavailable", "boris")]
    )
    assert kinds(facts)[-2:] == [
        ("closed", "boris", "operator_unavailable", None),
        ("missed", "boris", "operator_unavailable", None),
    ]


def test_a_waiting_dialog_closed_is_missed_for_its_line_alone() -> None:
    facts = facts_of([queued(0), closed(10, "finished", None)])
    assert kinds(facts)[-1] == ("missed", None, "finished", None)


def test_a_decline_is_a_close_and_a_decline_and_a_miss_when_unanswered() -> None:
    spam = facts_of([queued(0), assigned(0, "anna"), closed(5, "declined", "anna", spam=True)])
    assert kinds(spam)[-3:] == [
        ("closed", "anna", "declined", None),
        ("declined", "anna", "spam", None),
        ("missed", "anna", "declined", None),
    ]
    refused = facts_of(
        [
            queued(0),
            assigned(0, "anna"),
            answered(3, "anna"),
            closed(5, "declined", "anna", spam=False),
        ]
    )
    assert kinds(refused)[-2:] == [
        ("closed", "anna", "declined", None),
        ("declined", "anna", "refused", None),
    ]


def test_a_transfer_counts_out_for_the_side_it_left_and_in_for_the_side_it_reached() -> None:
    to_operator = transferred(10, "support", "support", "anna", "boris")
    to_line = transferred(20, "support", "sales", "boris")
    facts = facts_of([queued(0), assigned(0, "anna"), to_operator, assigned(10, "boris"), to_line])
    moves = [(f.kind, f.line_id, f.operator_id, f.detail) for f in facts if "transf" in f.kind]
    assert moves == [
        ("transferred_out", "support", "anna", "to_operator"),
        ("transferred_in", "support", "boris", "to_operator"),
        ("transferred_out", "support", "boris", "to_line"),
        ("transferred_in", "sales", None, "to_line"),
    ]


def test_a_dialog_is_answered_once_per_episode_and_again_after_reopening() -> None:
    facts = facts_of(
        [
            queued(0),
            assigned(0, "anna"),
            answered(10, "anna"),
            returned(20, "anna", "offline"),
            assigned(25, "boris"),
            answered(40, "boris"),  # answered already: not counted again
            closed(50, "finished", "boris"),
            queued(60, reason="reopened"),
            assigned(60, "boris"),
            answered(75, "boris"),
        ]
    )
    answers = [(f.operator_id, f.value) for f in facts if f.kind == "answered"]
    assert answers == [("anna", 10.0), ("boris", 15.0)]
    assert [(f.kind, f.detail) for f in facts if f.kind in ("received", "returned")] == [
        ("received", "new"),
        ("returned", "offline"),
        ("received", "reopened"),
    ]
    assert not [f for f in facts if f.kind == "missed"]


def test_a_transfer_to_a_line_keeps_the_episode_and_its_clock() -> None:
    facts = facts_of(
        [
            queued(0),
            transferred(0, "support", "after-hours", None),
            queued(0, line="after-hours", reason="transferred"),
            assigned(30, "chen", line="after-hours"),
            answered(45, "chen", line="after-hours"),
        ]
    )
    assert [f.kind for f in facts].count("received") == 1
    [first] = [f for f in facts if f.kind == "answered"]
    assert (first.line_id, first.operator_id, first.value) == ("after-hours", "chen", 45.0)


def test_ratings_are_read_defensively() -> None:
    facts = facts_of(
        [
            queued(0),
            assigned(0, "anna"),
            closed(9, "finished", "anna"),
            rated(10, {"score": 5}, "anna"),
            rated(11, {"score": "great"}, "anna"),
            rated(12, {"score": True, "operator_id": "boris"}, "anna"),
            rated(13, {}, None),
        ]
    )
    ratings = [(f.operator_id, f.value) for f in facts if f.kind == "rated"]
    assert ratings == [("anna", 5.0), ("anna", None), ("boris", None), (None, None)]


def test_a_timeline_that_missed_the_episodes_start_counts_only_what_needs_no_past() -> None:
    timeline = Timeline()
    late = [
        message(0),
        answered(10, "anna"),
        reply(11, "anna"),
        message(20),
        reply(30, "anna"),
        closed(40, "finished", "anna"),
    ]
    facts = [fact for event in late for fact in timeline.feed(event)]
    assert kinds(facts) == [("closed", "anna", "finished", None)]
    assert not timeline.known


def test_unread_kinds_make_no_facts() -> None:
    timeline = Timeline()
    event = queued(0)
    other = type(event)("d1", "dialog.pinned", 1, "support", "anna", {"operator_id": "anna"})
    assert timeline.feed(other) == []
