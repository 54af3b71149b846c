"""The dialog lifecycle, rule by rule, on the pure dispatcher with a clock in plain numbers."""

from __future__ import annotations

import pytest

from engine.errors import ConflictError, NotFoundError
from engine.routing.plan import CustomerOwners
from tests.engine.routing_kit import T0, Kit, line_rules, portal_rules

# -- distribution ----------------------------------------------------------------------------


def test_a_new_dialog_waits_when_nobody_is_online_and_its_stream_says_so() -> None:
    kit = Kit(line_rules())

    dialog = kit.write("42")

    assert dialog is not None and dialog.state == "waiting"
    assert kit.types("42") == ["dialog.queued", "message.received"]
    assert kit.data("dialog.queued") == [{"reason": "new", "position": 1, "opens_at": None}]
    assert [v["state"] for v in kit.views("42")] == ["waiting", "waiting"]


def test_evenly_gives_each_dialog_to_the_operator_idle_longest() -> None:
    kit = Kit(line_rules(queue={"distribution": "evenly"}))
    kit.online("a", "b", "c")

    owners = []
    for chat in ("1", "2", "3", "4"):
        kit.now += 1
        dialog = kit.write(chat)
        assert dialog is not None
        owners.append(dialog.operator_id)

    assert owners == ["a", "b", "c", "a"]


def test_strictly_fills_queue_order_and_skips_operators_already_tried() -> None:
    kit = Kit(
        line_rules(queue={"distribution": "strictly"}, capacity={"max_dialogs_per_operator": 2})
    )
    kit.online("a", "b", "c")

    owners = [kit.write(chat).operator_id for chat in ("1", "2", "3")]  # type: ignore[union-attr]

    assert owners == ["a", "a", "b"]


def test_strictly_offers_the_next_operator_after_a_skip_and_wraps_round() -> None:
    kit = Kit(line_rules(members=("a", "b"), queue={"distribution": "strictly"}, accept=True))
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.offered_to == ("a",)

    kit.dispatcher.skip(dialog.dialog_id, "a", kit.now)
    kit.collect()
    assert kit.dialog_of("1").offered_to == ("b",)  # type: ignore[union-attr]

    kit.dispatcher.skip(dialog.dialog_id, "b", kit.now)
    kit.collect()
    assert kit.dialog_of("1").offered_to == ("a",)  # type: ignore[union-attr]  # wrapped round
    decisions = [e for e in kit.data("dialog.offer_withdrawn", "1")]
    assert decisions == [
        {"operator_ids": ["a"], "reason": "skipped"},
        {"operator_ids": ["b"], "reason": "skipped"},
    ]


def test_all_offers_everyone_the_first_to_accept_takes_it_the_others_see_it_withdrawn() -> None:
    kit = Kit(line_rules(queue={"distribution": "all"}, accept=True))
    kit.online("a", "b", "c")
    dialog = kit.write("1")
    assert dialog is not None and dialog.offered_to == ("a", "b", "c")

    kit.dispatcher.accept(dialog.dialog_id, "b", kit.now)
    kit.collect()

    assert kit.types("1")[-2:] == ["dialog.assigned", "dialog.offer_withdrawn"]
    assert kit.data("dialog.assigned", "1") == [
        {"operator_id": "b", "via": "accept", "decision_id": None}
    ]
    assert kit.data("dialog.offer_withdrawn", "1") == [
        {"operator_ids": ["a", "c"], "reason": "taken"}
    ]
    with pytest.raises(ConflictError, match=r"no open offer to 'a': it is assigned to 'b'"):
        kit.dispatcher.accept(dialog.dialog_id, "a", kit.now)


def test_accepting_at_capacity_is_refused_and_changes_nothing() -> None:
    kit = Kit(
        line_rules(
            members=("a",),
            capacity={"max_dialogs_per_operator": 1, "counted_states": ["assigned", "answered"]},
            accept=True,
        )
    )
    kit.online("a")
    first = kit.write("1")
    second = kit.write("2")
    assert first is not None and second is not None
    assert first.offered_to == ("a",) and second.offered_to == ("a",)  # offers do not count
    kit.dispatcher.accept(first.dialog_id, "a", kit.now)

    with pytest.raises(ConflictError, match=r"'a' is at capacity on line 'support' \(1 of 1\)"):
        kit.dispatcher.accept(second.dialog_id, "a", kit.now)
    assert kit.dialog_of("2").state == "offered"  # type: ignore[union-attr]


def test_an_operator_never_gets_more_than_their_capacity_and_a_finish_frees_a_place() -> None:
    kit = Kit(line_rules(members=("a",), capacity={"max_dialogs_per_operator": 2}))
    kit.online("a")
    dialogs = [kit.write(chat) for chat in ("1", "2", "3")]

    assert [d.state for d in dialogs] == ["assigned", "assigned", "waiting"]  # type: ignore[union-attr]
    kit.dispatcher.finish(dialogs[0].dialog_id, kit.now)  # type: ignore[union-attr]
    kit.collect()

    assert kit.dialog_of("3").operator_id == "a"  # type: ignore[union-attr]
    assert kit.dialog_of("1") is None
    assert kit.data("dialog.closed", "1") == [
        {"reason": "finished", "operator_id": "a", "closed_by": None, "decline": None}
    ]


def test_capacity_across_lines_counts_every_line_of_the_portal() -> None:
    support = line_rules("support", ("a",), capacity={"max_dialogs_across_lines": 2})
    sales = line_rules("sales", ("a",), capacity={"max_dialogs_across_lines": 2})
    kit = Kit(support, sales)
    kit.online("a")

    kit.write("1", "support")
    kit.write("2", "sales")
    third = kit.write("3", "sales")

    assert third is not None and third.state == "waiting"
    assert kit.board.load("a", ("assigned", "answered"), None) == 2


def test_a_higher_priority_line_is_served_first_when_an_operator_frees_up() -> None:
    low = line_rules(
        "low", ("a",), capacity={"max_dialogs_per_operator": 1, "max_dialogs_across_lines": 1}
    )
    high = line_rules(
        "high",
        ("a",),
        priority=10,
        capacity={"max_dialogs_per_operator": 1, "max_dialogs_across_lines": 1},
    )
    kit = Kit(low, high)
    kit.write("1", "low")
    kit.now += 1
    kit.write("2", "high")

    kit.online("a")

    assert kit.dialog_of("2").operator_id == "a"  # type: ignore[union-attr]
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]


def test_newest_first_serves_the_latest_waiting_dialog() -> None:
    kit = Kit(
        line_rules(
            members=("a",),
            queue={"order": "newest_first"},
            capacity={"max_dialogs_per_operator": 1},
        )
    )
    for chat in ("1", "2", "3"):
        kit.now += 1
        kit.write(chat)

    kit.online("a")

    assert kit.dialog_of("3").operator_id == "a"  # type: ignore[union-attr]


# -- timers ----------------------------------------------------------------------------------


def test_the_accept_timeout_starts_when_the_offer_reached_the_portal() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b"),
            queue={"distribution": "strictly"},
            timers={"accept_timeout_s": 60},
            accept=True,
        )
    )
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.offered_to == ("a",)

    kit.advance(3600)  # the portal is down: nobody saw the offer, nothing moves
    assert kit.dialog_of("1").offered_to == ("a",)  # type: ignore[union-attr]

    kit.reached()
    kit.advance(59.9)
    assert kit.dialog_of("1").offered_to == ("a",)  # type: ignore[union-attr]
    kit.advance(0.1)

    assert kit.dialog_of("1").offered_to == ("b",)  # type: ignore[union-attr]
    assert kit.data("dialog.offer_withdrawn", "1") == [{"operator_ids": ["a"], "reason": "expired"}]


def test_a_timer_that_fell_due_long_ago_fires_once() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b"),
            queue={"distribution": "strictly"},
            timers={"accept_timeout_s": 60},
            accept=True,
        )
    )
    kit.online("a", "b")
    kit.write("1")
    kit.reached()

    kit.advance(10 * 3600)  # the router was down for ten hours

    assert kit.types("1").count("dialog.offer_withdrawn") == 1
    assert kit.dialog_of("1").offered_to == ("b",)  # type: ignore[union-attr]
    assert kit.dialog_of("1").offer_seen_at is None  # type: ignore[union-attr]  # the new offer waits to be seen


def test_no_answer_returns_the_dialog_to_the_queue_each_time() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b"),
            queue={"distribution": "strictly"},
            timers={"no_answer_timeout_s": 120, "no_answer_text": "Sorry, passing you on."},
        )
    )
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"

    kit.advance(120)
    assert kit.dialog_of("1").operator_id == "b"  # type: ignore[union-attr]
    kit.advance(120)
    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]

    assert kit.data("dialog.returned", "1") == [
        {"operator_id": "a", "reason": "no_answer"},
        {"operator_id": "b", "reason": "no_answer"},
    ]
    assert [text for _, text in kit.texts] == ["Sorry, passing you on."] * 2


def test_an_answer_stops_the_no_answer_timer() -> None:
    kit = Kit(line_rules(members=("a",), timers={"no_answer_timeout_s": 120}))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None

    kit.dispatcher.answered(dialog.dialog_id, "a", kit.now)
    kit.collect()
    kit.advance(1000)

    assert kit.dialog_of("1").state == "answered"  # type: ignore[union-attr]
    assert kit.data("dialog.answered", "1") == [{"operator_id": "a"}]


def test_no_operator_text_is_sent_once_while_the_dialog_keeps_waiting() -> None:
    kit = Kit(
        line_rules(timers={"no_operator_timeout_s": 300, "no_operator_text": "All busy, hold on."})
    )
    kit.write("1")

    kit.advance(299)
    assert kit.texts == []
    kit.advance(1)
    kit.advance(3600)

    assert [text for _, text in kit.texts] == ["All busy, hold on."]
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]


# -- availability ----------------------------------------------------------------------------


def test_offline_with_grace_returns_after_the_grace_unless_the_operator_comes_back() -> None:
    rules = line_rules(
        members=("a", "b"),
        queue={"distribution": "strictly"},
        unavailable={
            "offline": {
                "action": "return",
                "grace_s": 300,
                "customer_text": "Your operator left; finding another.",
            }
        },
    )
    kit = Kit(rules)
    kit.online("a")
    kit.write("1")
    kit.write("2")

    kit.status("a", "offline")
    kit.advance(200)
    kit.online("a")  # back within the grace: keeps the dialogs
    kit.advance(1000)
    assert {kit.dialog_of(c).operator_id for c in ("1", "2")} == {"a"}  # type: ignore[union-attr]

    kit.status("a", "offline")
    kit.online("b")
    kit.advance(300)

    assert {kit.dialog_of(c).operator_id for c in ("1", "2")} == {"b"}  # type: ignore[union-attr]
    assert kit.data("dialog.returned", "1") == [{"operator_id": "a", "reason": "offline"}]
    assert len(kit.texts) == 2


def test_away_keeps_dialogs_vacation_returns_them_at_once_end_of_day_per_rule() -> None:
    rules = line_rules(
        members=("a", "b"),
        queue={"distribution": "strictly"},
        require_work_day=True,
        unavailable={"end_of_day": {"action": "close"}},
    )
    kit = Kit(rules)
    kit.online("a")
    kit.write("1")

    kit.status("a", "away")
    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]

    kit.online("a")
    kit.status("a", "vacation")
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]
    assert kit.data("dialog.returned", "1") == [{"operator_id": "a", "reason": "vacation"}]

    kit.online("b")
    assert kit.dialog_of("1").operator_id == "b"  # type: ignore[union-attr]
    kit.online("b", working=False)  # ends the work day: this line closes the dialog
    assert kit.dialog_of("1") is None
    assert kit.data("dialog.closed", "1") == [
        {"reason": "operator_unavailable", "operator_id": "b", "closed_by": None, "decline": None}
    ]


def test_an_operator_who_has_not_started_their_work_day_gets_nothing_when_the_line_says_so() -> (
    None
):
    kit = Kit(line_rules(members=("a",), require_work_day=True))
    kit.online("a", working=False)
    assert kit.write("1").state == "waiting"  # type: ignore[union-attr]

    kit.online("a", working=True)

    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]


def test_an_offer_to_an_operator_going_offline_is_withdrawn_and_passed_on() -> None:
    kit = Kit(line_rules(members=("a", "b"), queue={"distribution": "strictly"}, accept=True))
    kit.online("a", "b")
    kit.write("1")

    kit.status("a", "offline")

    assert kit.dialog_of("1").offered_to == ("b",)  # type: ignore[union-attr]
    assert kit.data("dialog.offer_withdrawn", "1") == [
        {"operator_ids": ["a"], "reason": "unavailable"}
    ]


def test_an_operator_removed_from_the_queue_loses_their_dialogs_by_the_removed_rule() -> None:
    kit = Kit(line_rules(members=("a", "b"), queue={"distribution": "strictly"}))
    kit.online("a", "b")
    kit.write("1")

    kit.dispatcher.rules_changed(portal_rules(line_rules(members=("b",)), version=2), kit.now)
    kit.collect()

    assert kit.dialog_of("1").operator_id == "b"  # type: ignore[union-attr]
    assert kit.data("dialog.returned", "1") == [{"operator_id": "a", "reason": "removed"}]


# -- CRM ownership ---------------------------------------------------------------------------


def test_a_returning_customer_goes_to_their_responsible_then_falls_back() -> None:
    kit = Kit(line_rules(queue={"distribution": "strictly"}, crm={"wait_for_responsible_s": 600}))
    kit.online("a", "b", "c")
    kit.dispatcher.set_owner("tg/1", "c", None, kit.now)
    kit.collect()

    assert kit.write("1").operator_id == "c"  # type: ignore[union-attr]
    kit.dispatcher.finish(kit.dialog_of("1").dialog_id, kit.now)  # type: ignore[union-attr]
    kit.status("c", "offline")

    kit.write("1")
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]  # waits for c
    kit.advance(600)

    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]


def test_the_last_operator_comes_before_the_queue() -> None:
    kit = Kit(line_rules(queue={"distribution": "strictly"}))
    kit.online("a", "b")

    dialog = kit.write("1", owners=CustomerOwners("tg/1", None, "b"))

    assert dialog is not None and dialog.operator_id == "b"
    decision = kit.collect()
    assert decision is not None


# -- working hours ---------------------------------------------------------------------------

BERLIN_WEEKDAYS = {
    "timezone": "Europe/Berlin",
    "weekly": {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}


def test_outside_hours_the_customer_is_told_when_the_line_opens_and_the_dialog_waits() -> None:
    kit = Kit(
        line_rules(
            members=("a",), hours=BERLIN_WEEKDAYS, outside_hours={"text": "We open {opens_at}."}
        )
    )
    kit.online("a")
    kit.now = T0 + 4.5 * 3600  # Friday 13:30 Berlin: the lunch break

    dialog = kit.write("1")

    assert dialog is not None and dialog.state == "waiting"
    assert kit.texts == [(dialog.dialog_id, "We open Fri 2027-01-15 14:00 (Europe/Berlin).")]
    kit.advance(1799)
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]
    kit.advance(1)
    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]


def test_outside_hours_a_line_may_hand_its_dialogs_to_another_line() -> None:
    support = line_rules(
        "support",
        ("a",),
        hours=BERLIN_WEEKDAYS,
        outside_hours={"action": "transfer", "transfer_to_line": "night"},
    )
    night = line_rules("night", ("n",))
    kit = Kit(support, night)
    kit.online("a", "n")
    kit.now = T0 + 14 * 3600  # Friday 23:00 Berlin

    dialog = kit.write("1")

    assert dialog is not None and dialog.line_id == "night" and dialog.operator_id == "n"
    assert kit.data("dialog.transferred", "1") == [
        {
            "from_line": "support",
            "to_line": "night",
            "reason": "outside_hours",
            "from_operator_id": None,
            "to_operator_id": None,
            "by": None,
        }
    ]


def test_a_holiday_keeps_the_line_closed_until_the_next_working_day() -> None:
    hours = {**BERLIN_WEEKDAYS, "holidays": ["2027-01-18"]}  # Monday
    kit = Kit(line_rules(members=("a",), hours=hours))
    kit.online("a")
    kit.now = T0 + 2 * 86400  # Sunday 09:00 Berlin

    kit.write("1")
    kit.advance(86400)  # Monday, the holiday
    assert kit.dialog_of("1").state == "waiting"  # type: ignore[union-attr]
    kit.advance(86400)  # Tuesday 09:00

    assert kit.dialog_of("1").operator_id == "a"  # type: ignore[union-attr]


def test_an_operator_outside_their_own_hours_is_skipped() -> None:
    own_hours = {"a": {"hours": {"timezone": "UTC", "weekly": {"fri": ["12:00-20:00"]}}}}
    kit = Kit(
        line_rules(members=("a", "b"), queue={"distribution": "strictly"}, operators=own_hours)
    )
    kit.online("a", "b")

    assert kit.write("1").operator_id == "b"  # type: ignore[union-attr]  # 08:00 UTC
    kit.now = T0 + 4 * 3600
    assert kit.write("2").operator_id == "a"  # type: ignore[union-attr]


# -- queue position --------------------------------------------------------------------------


def test_the_customer_is_told_their_place_on_joining_and_as_it_moves() -> None:
    kit = Kit(
        line_rules(
            members=("a",),
            capacity={"max_dialogs_per_operator": 1},
            queue_position={
                "on_join": True,
                "on_move": True,
                "text": "#{position}, ~{wait_min} min",
                "average_handle_s": 120,
            },
        )
    )
    kit.online("a")
    first = kit.write("1")
    kit.write("2")
    kit.write("3")
    assert first is not None

    kit.dispatcher.finish(first.dialog_id, kit.now)
    kit.collect()

    said = [text for _, text in kit.texts]
    assert said == ["#1, ~2 min", "#2, ~4 min", "#1, ~2 min"]  # the first was served at once


# -- refusals --------------------------------------------------------------------------------


def test_actions_on_unknown_dialogs_and_without_an_offer_are_refused() -> None:
    kit = Kit(line_rules(accept=True))
    with pytest.raises(NotFoundError, match="dialog 'dlg_x' is not open"):
        kit.dispatcher.accept("dlg_x", "a", kit.now)
    dialog = kit.write("1")
    assert dialog is not None
    with pytest.raises(
        ConflictError, match=r"no open offer to 'a': it is waiting, offered to \[\]"
    ):
        kit.dispatcher.skip(dialog.dialog_id, "a", kit.now)


# -- found in review -------------------------------------------------------------------------


def test_evenly_with_offers_spreads_simultaneous_dialogs() -> None:
    kit = Kit(line_rules(queue={"distribution": "evenly"}, accept=True))
    kit.online("a", "b", "c")

    offered = [kit.write(chat).offered_to for chat in ("1", "2", "3")]  # type: ignore[union-attr]

    assert offered == [("a",), ("b",), ("c",)]


def test_ending_the_work_day_means_nothing_to_a_line_that_does_not_ask_for_it() -> None:
    kit = Kit(line_rules(members=("a",), accept=True))
    kit.online("a")
    kit.write("1")

    kit.online("a", working=False)

    assert kit.dialog_of("1").offered_to == ("a",)  # type: ignore[union-attr]


def test_a_responsible_who_let_the_offer_expire_is_not_waited_for_again() -> None:
    kit = Kit(
        line_rules(
            queue={"distribution": "strictly"},
            accept=True,
            crm={"wait_for_responsible_s": 600},
            timers={"accept_timeout_s": 60},
        )
    )
    kit.online("a", "c")
    dialog = kit.write("1", owners=CustomerOwners("tg/1", "c", None))
    assert dialog is not None and dialog.offered_to == ("c",)
    kit.reached()

    kit.advance(60)

    assert kit.dialog_of("1").offered_to == ("a",)  # type: ignore[union-attr]


def test_finishing_an_offered_dialog_withdraws_the_offer_first() -> None:
    kit = Kit(line_rules(members=("a",), accept=True))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None

    kit.dispatcher.finish(dialog.dialog_id, kit.now, "a")
    kit.collect()

    assert kit.types("1")[-2:] == ["dialog.offer_withdrawn", "dialog.closed"]
    assert [v["state"] for v in kit.views("1")][-2:] == ["waiting", "closed"]
    assert kit.data("dialog.closed", "1") == [
        {"reason": "finished", "operator_id": None, "closed_by": "a", "decline": None}
    ]


def test_an_answer_frees_a_place_when_answered_dialogs_do_not_count() -> None:
    kit = Kit(
        line_rules(
            members=("a",),
            capacity={"max_dialogs_per_operator": 1, "counted_states": ["offered", "assigned"]},
        )
    )
    kit.online("a")
    first = kit.write("1")
    kit.write("2")
    assert first is not None

    kit.dispatcher.answered(first.dialog_id, "a", kit.now)
    kit.collect()

    assert kit.dialog_of("2").operator_id == "a"  # type: ignore[union-attr]


def test_a_dialog_opened_outside_hours_says_when_the_line_opens() -> None:
    support = line_rules("support", ("a",), hours=BERLIN_WEEKDAYS)
    kit = Kit(support)
    kit.now = T0 + 4.5 * 3600  # Friday 13:30 Berlin

    kit.write("1")

    assert kit.data("dialog.queued", "1") == [
        {"reason": "new", "position": 1, "opens_at": T0 + 5 * 3600}
    ]
