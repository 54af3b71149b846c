"""How the router treats what is not a customer message (``channel.event``) and how it tracks
a channel's messaging window, on the pure dispatcher (docs/channels/contract.md)."""

from __future__ import annotations

import orjson

from engine.ingest import CHANNEL_EVENT
from engine.routing.windows import ReplyWindow
from tests.engine.routing_kit import T0, Kit, line_rules

DAY_S = 86_400.0


def test_a_channel_event_without_a_dialog_opens_none_and_is_dropped() -> None:
    kit = Kit(line_rules())
    kit.online("a")

    assert kit.write("42", kind=CHANNEL_EVENT) is None

    plan_dropped = kit.dispatcher.take_plan()  # collected already: nothing left behind
    assert not plan_dropped
    assert kit.stored == {} and kit.types() == []


def test_a_channel_event_joins_the_open_dialog_without_routing_it_again() -> None:
    kit = Kit(line_rules())
    kit.online("a")
    opened = kit.write("42")
    assert opened is not None and opened.state == "assigned"

    after = kit.write("42", kind=CHANNEL_EVENT)

    assert after is not None and after.dialog_id == opened.dialog_id
    assert after.state == "assigned" and after.operator_id == "a"
    assert kit.types("42")[-1] == CHANNEL_EVENT
    assert kit.types("42").count("dialog.assigned") == 1


def test_a_channel_event_after_the_dialog_closed_joins_the_closed_dialog() -> None:
    kit = Kit(line_rules())
    kit.online("a")
    opened = kit.write("42")
    assert opened is not None
    kit.dispatcher.finish(opened.dialog_id, kit.now, "a")
    kit.collect()

    assert kit.write("42", kind=CHANNEL_EVENT) is None  # not reopened
    last = list(kit.entries_of("42"))[-1]
    assert (last.kind, last.dialog_id) == (CHANNEL_EVENT, opened.dialog_id)


def test_the_window_closes_a_day_after_the_customers_last_message() -> None:
    kit = Kit(line_rules())
    kit.dispatcher.window_of = lambda connector_id, key: ReplyWindow(DAY_S)
    kit.online("a")

    first = kit.write("42")
    assert first is not None and first.window_closes_at == T0 + DAY_S
    kit.now += 3600
    kit.write("42", kind=CHANNEL_EVENT)  # a receipt does not open the window again
    kit.now += 3600
    later = kit.write("42")

    assert later is not None and later.window_closes_at == T0 + 7200 + DAY_S
    views = kit.views("42")
    assert views[-1]["window_closes_at"] == T0 + 7200 + DAY_S  # what the portal sees
    assert {v["window_closes_at"] for v in views} == {T0 + DAY_S, T0 + 7200 + DAY_S}


def test_a_channel_without_a_window_shows_none() -> None:
    kit = Kit(line_rules())
    kit.online("a")
    kit.write("42")
    assert {orjson.loads(e.dialog_json)["window_closes_at"] for e in kit.entries_of("42")} == {None}


def test_an_event_the_provider_counts_opens_the_window_again_others_do_not() -> None:
    kit = Kit(line_rules())
    kit.dispatcher.window_of = lambda connector_id, key: ReplyWindow(DAY_S)
    kit.online("a")
    kit.write("42")
    kit.now += 3600
    receipt = kit.write("42", kind=CHANNEL_EVENT)  # a receipt, typing: the customer did not act
    assert receipt is not None and receipt.window_closes_at == T0 + DAY_S
    kit.now += 3600
    reacted = kit.write("42", kind=CHANNEL_EVENT, opens_window=True)  # a Messenger reaction

    assert reacted is not None and reacted.window_closes_at == T0 + 7200 + DAY_S
    assert kit.views("42")[-1]["window_closes_at"] == T0 + 7200 + DAY_S
    assert kit.types("42").count("dialog.assigned") == 1  # not routed again


def test_a_window_opening_event_opens_no_dialog_and_leaves_a_closed_one_closed() -> None:
    kit = Kit(line_rules())
    kit.dispatcher.window_of = lambda connector_id, key: ReplyWindow(DAY_S)
    kit.online("a")
    assert kit.write("42", kind=CHANNEL_EVENT, opens_window=True) is None
    opened = kit.write("42")
    assert opened is not None
    kit.dispatcher.finish(opened.dialog_id, kit.now, "a")
    kit.collect()
    kit.now += 3600

    assert kit.write("42", kind=CHANNEL_EVENT, opens_window=True) is None
    closed = kit.stored[opened.dialog_id]
    assert closed.state == "closed" and closed.window_closes_at == T0 + DAY_S


def test_the_window_is_per_dialog() -> None:
    kit = Kit(line_rules())
    windows = {"42": ReplyWindow(DAY_S), "comment:7": None}
    kit.dispatcher.window_of = lambda connector_id, key: windows[key]
    kit.online("a")
    direct, comment = kit.write("42"), kit.write("comment:7")
    assert direct is not None and direct.window_closes_at == T0 + DAY_S
    assert comment is not None and comment.window_closes_at is None
