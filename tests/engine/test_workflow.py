"""The operator's workflow, action by action and refusal by refusal, on the pure dispatcher
with a clock in plain numbers: decline, pin, transfer, participants, replies, reopen,
blocks and what an operator or a queue holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from engine.errors import (
    ConflictError,
    EngineError,
    NotFoundError,
    ValidationFailedError,
    WindowClosedError,
)
from engine.models import OutboundFile, OutboundImage, OutboundText, ReplySender
from engine.routing.plan import CustomerOwners
from engine.routing.reply_text import ShownReply, quick_answer_text
from engine.routing.state import DialogState
from engine.routing.windows import ReplyWindow
from engine.routing.workflow import ReplyConditions
from tests.engine.routing_kit import T0, Kit, line_rules, portal_rules


def held(kit: Kit, chat: str) -> DialogState:
    dialog = kit.dialog_of(chat)
    assert dialog is not None
    return dialog


def refused(kit: Kit, action: Callable[[], object], error: type[EngineError], code: str) -> str:
    """The action is refused with ``code`` and changes nothing: no plan, the same board."""
    before = dict(kit.board.dialogs), dict(kit.board.blocked)
    with pytest.raises(error) as raised:
        action()
    assert raised.value.reason == code
    assert not kit.dispatcher.take_plan()
    assert (dict(kit.board.dialogs), dict(kit.board.blocked)) == before
    return str(raised.value)


# -- decline ---------------------------------------------------------------------------------


def test_declining_closes_tells_the_customer_and_frees_the_operator() -> None:
    kit = Kit(line_rules(members=("a",), capacity={"max_dialogs_per_operator": 1}))
    kit.online("a")
    first = kit.write("1")
    assert first is not None
    kit.write("2")

    kit.workflow.decline(first.dialog_id, kit.now, by="a", customer_text="We cannot help here.")
    kit.collect()

    assert kit.dialog_of("1") is None
    assert kit.data("dialog.closed", "1") == [
        {
            "reason": "declined",
            "operator_id": "a",
            "closed_by": "a",
            "decline": {"spam": False, "customer_told": True, "blocked": False},
        }
    ]
    assert kit.texts == [(first.dialog_id, "We cannot help here.")]
    assert held(kit, "2").operator_id == "a"  # the freed place is taken at once


def test_a_declined_dialog_is_not_reopened_and_the_next_message_opens_a_new_one() -> None:
    kit = Kit(line_rules(members=("a",), reopen_within_s=600))
    first = kit.write("1")
    assert first is not None
    kit.workflow.decline(first.dialog_id, kit.now)
    kit.collect()

    again = kit.write("1")

    assert again is not None and again.dialog_id != first.dialog_id
    assert kit.data("dialog.closed", "1")[0]["decline"] == {
        "spam": False,
        "customer_told": False,
        "blocked": False,
    }


def test_spam_with_block_keeps_the_customers_messages_out_until_unblocked() -> None:
    kit = Kit(line_rules(members=("a",)))
    first = kit.write("1")
    assert first is not None
    kit.workflow.decline(first.dialog_id, kit.now, by="a", spam=True, block=True)
    assert kit.collect().blocks["tg/1"] is not None

    assert kit.write("1") is None
    assert kit.write("1") is None
    plan_entries = [e for e in kit.entries if not e.deliver]
    assert [(e.kind, e.dialog_id) for e in plan_entries] == [
        ("message.received", first.dialog_id)
    ] * 2
    assert kit.board.blocked["tg/1"].messages == 2
    assert kit.write("2") is not None  # another customer is not concerned

    block = kit.workflow.unblock("tg/1", kit.stored[first.dialog_id], kit.now, by="b")
    plan = kit.collect()

    assert block.messages == 2 and plan.blocks == {"tg/1": None}
    assert kit.data("customer.unblocked", "1") == [
        {"connector_id": "tg", "customer_id": "1", "by": "b", "messages": 2}
    ]
    reopened = kit.write("1")
    assert reopened is not None and reopened.dialog_id != first.dialog_id


def test_decline_refusals() -> None:
    kit = Kit(line_rules())
    dialog = kit.write("1")
    assert dialog is not None

    refused(
        kit,
        lambda: kit.workflow.decline(dialog.dialog_id, kit.now, block=True),
        ValidationFailedError,
        "invalid_payload",
    )
    refused(
        kit, lambda: kit.workflow.decline("dlg_x", kit.now, spam=True), NotFoundError, "not_found"
    )
    refused(
        kit,
        lambda: kit.workflow.unblock("tg/1", dialog, kit.now),
        NotFoundError,
        "not_found",
    )


# -- pinning ---------------------------------------------------------------------------------


def test_a_pinned_dialog_stays_whatever_the_unavailable_rules_and_the_no_answer_timer_say() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b"),
            queue={"distribution": "strictly"},
            require_work_day=True,
            timers={"no_answer_timeout_s": 60},
            unavailable={
                "offline": {"action": "return"},
                "vacation": {"action": "close"},
                "end_of_day": {"action": "return"},
            },
        )
    )
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"

    kit.workflow.pin(dialog.dialog_id, kit.now, by="boss")
    kit.collect()
    assert kit.dispatcher.deadline(held(kit, "1")) is None
    kit.advance(3600)  # the no-answer timer
    kit.status("a", "offline")
    kit.status("a", "vacation")
    kit.online("a", working=False)  # end of day
    kit.dispatcher.rules_changed(portal_rules(line_rules(members=("b",)), version=2), kit.now)
    kit.collect()

    assert held(kit, "1").operator_id == "a" and held(kit, "1").pinned
    assert kit.types("1") == [
        "dialog.queued",
        "dialog.assigned",
        "message.received",
        "dialog.pinned",
    ]
    assert kit.data("dialog.pinned") == [{"operator_id": "a", "by": "boss"}]
    assert kit.views("1")[-1]["pinned"] is True


def test_unpinning_applies_the_rule_for_an_operator_unavailable_now() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b"),
            queue={"distribution": "strictly"},
            unavailable={"offline": {"action": "return", "grace_s": 30}},
        )
    )
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None
    kit.workflow.pin(dialog.dialog_id, kit.now)
    kit.status("a", "offline")
    kit.advance(600)
    assert held(kit, "1").operator_id == "a"

    kit.workflow.unpin(dialog.dialog_id, kit.now, by="a")
    kit.collect()
    assert held(kit, "1").operator_id == "a"  # the grace starts now
    kit.advance(30)

    assert held(kit, "1").operator_id == "b"
    assert kit.data("dialog.unpinned") == [{"operator_id": "a", "by": "a"}]
    assert kit.data("dialog.returned", "1") == [{"operator_id": "a", "reason": "offline"}]


def test_the_no_answer_timer_starts_again_when_a_dialog_is_unpinned() -> None:
    kit = Kit(line_rules(members=("a",), timers={"no_answer_timeout_s": 60}))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None
    kit.workflow.pin(dialog.dialog_id, kit.now)
    kit.advance(600)

    kit.workflow.unpin(dialog.dialog_id, kit.now)
    kit.collect()

    assert kit.dispatcher.deadline(held(kit, "1")) == kit.now + 60


def test_pin_refusals() -> None:
    kit = Kit(line_rules(members=("a",)))
    waiting = kit.write("1")
    assert waiting is not None
    message = refused(
        kit, lambda: kit.workflow.pin(waiting.dialog_id, kit.now), ConflictError, "not_assigned"
    )
    assert message == f"dialog {waiting.dialog_id!r} has no operator to pin it to: it is waiting"
    refused(
        kit, lambda: kit.workflow.unpin(waiting.dialog_id, kit.now), ConflictError, "not_pinned"
    )
    kit.online("a")
    kit.workflow.pin(waiting.dialog_id, kit.now)
    kit.collect()
    refused(
        kit, lambda: kit.workflow.pin(waiting.dialog_id, kit.now), ConflictError, "already_pinned"
    )


# -- transfer to an operator -----------------------------------------------------------------


def test_a_transfer_to_an_operator_assigns_it_directly_when_the_line_needs_no_accept() -> None:
    kit = Kit(line_rules(members=("a", "b"), queue={"distribution": "strictly"}))
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"
    kit.workflow.pin(dialog.dialog_id, kit.now)

    kit.workflow.transfer_to_operator(dialog.dialog_id, "b", kit.now, by="a")
    plan = kit.collect()

    moved = held(kit, "1")
    assert (moved.operator_id, moved.state, moved.pinned) == ("b", "assigned", False)
    assert kit.types("1")[-2:] == ["dialog.transferred", "dialog.assigned"]
    assert kit.data("dialog.transferred", "1") == [
        {
            "from_line": "support",
            "to_line": "support",
            "reason": "operator",
            "from_operator_id": "a",
            "to_operator_id": "b",
            "by": "a",
        }
    ]
    (decision,) = plan.decisions
    assert (decision.action, decision.operator_ids, decision.path) == ("assign", ("b",), "transfer")
    assert kit.data("dialog.assigned", "1")[-1] == {
        "operator_id": "b",
        "via": "transfer",
        "decision_id": decision.decision_id,
    }
    assert kit.board.load("a", ("assigned", "answered"), "support") == 0
    assert kit.customers["tg/1"].last_operator_id == "b"


def test_a_transfer_to_an_operator_is_an_offer_when_the_line_requires_accepting() -> None:
    kit = Kit(line_rules(members=("a", "b", "c"), queue={"distribution": "strictly"}, accept=True))
    kit.online("a", "b", "c")
    dialog = kit.write("1")
    assert dialog is not None and dialog.offered_to == ("a",)

    kit.workflow.transfer_to_operator(dialog.dialog_id, "c", kit.now)
    kit.collect()
    assert held(kit, "1").offered_to == ("c",)
    assert kit.types("1")[-3:] == [
        "dialog.offer_withdrawn",
        "dialog.transferred",
        "dialog.offered",
    ]
    assert kit.data("dialog.offer_withdrawn", "1") == [
        {"operator_ids": ["a"], "reason": "transferred"}
    ]

    kit.dispatcher.skip(dialog.dialog_id, "c", kit.now)  # back to the queue's own order
    kit.collect()
    assert held(kit, "1").offered_to == ("b",)


def test_a_transfer_may_change_the_customers_responsible() -> None:
    kit = Kit(line_rules(members=("a", "b")))
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None

    kit.workflow.transfer_to_operator(
        dialog.dialog_id,
        "b",
        kit.now,
        responsible_id="b",
        owners=CustomerOwners("tg/1", None, "a"),
    )
    kit.collect()

    assert kit.customers["tg/1"] == CustomerOwners("tg/1", "b", "b")
    assert held(kit, "1").responsible_id == "b"


def test_transfer_to_an_operator_refusals() -> None:
    kit = Kit(
        line_rules(
            members=("a", "b", "c"),
            queue={"distribution": "strictly"},
            capacity={"max_dialogs_per_operator": 1},
        )
    )
    kit.online("a", "b")
    first, second = kit.write("1"), kit.write("2")
    assert first is not None and second is not None
    assert (first.operator_id, second.operator_id) == ("a", "b")

    message = refused(
        kit,
        lambda: kit.workflow.transfer_to_operator(first.dialog_id, "b", kit.now),
        ConflictError,
        "at_capacity",
    )
    assert message == (
        f"operator 'b' cannot take dialog {first.dialog_id!r} on line 'support' now: at_capacity"
    )
    refused(
        kit,
        lambda: kit.workflow.transfer_to_operator(first.dialog_id, "c", kit.now),
        ConflictError,
        "operator_unavailable",
    )
    refused(
        kit,
        lambda: kit.workflow.transfer_to_operator(first.dialog_id, "a", kit.now),
        ConflictError,
        "already_theirs",
    )
    refused(
        kit,
        lambda: kit.workflow.transfer_to_operator(first.dialog_id, "zed", kit.now),
        NotFoundError,
        "not_found",
    )
    refused(
        kit,
        lambda: kit.workflow.transfer_to_operator(
            first.dialog_id, "c", kit.now, responsible_id="zed"
        ),
        NotFoundError,
        "not_found",
    )


# -- transfer to a line ----------------------------------------------------------------------


def test_a_transfer_to_a_line_joins_the_back_of_its_queue_and_its_rules_apply() -> None:
    support = line_rules("support", ("a",))
    sales = line_rules("sales", ("s",), capacity={"max_dialogs_per_operator": 1})
    kit = Kit(support, sales)
    kit.online("a", "s")
    kit.write("9", "sales")  # s is now full
    kit.now += 1
    kit.write("8", "sales")  # waits on sales
    kit.now += 1
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"

    kit.workflow.transfer_to_line(dialog.dialog_id, "sales", kit.now, by="a")
    kit.collect()

    moved = held(kit, "1")
    assert (moved.line_id, moved.state, moved.operator_id) == ("sales", "waiting", None)
    assert kit.types("1")[-2:] == ["dialog.transferred", "dialog.queued"]
    assert kit.data("dialog.queued", "1")[-1] == {
        "reason": "transferred",
        "position": 2,
        "opens_at": None,
    }
    assert kit.data("dialog.transferred", "1")[-1]["to_operator_id"] is None
    assert [d.dialog_id for d in kit.workflow.queue_of("sales")] == [
        held(kit, "8").dialog_id,
        dialog.dialog_id,
    ]
    kit.dispatcher.finish(held(kit, "9").dialog_id, kit.now)
    kit.dispatcher.finish(held(kit, "8").dialog_id, kit.now)
    kit.collect()
    assert held(kit, "1").operator_id == "s"


def test_a_transfer_to_a_closed_line_tells_the_customer_and_waits_for_the_opening() -> None:
    hours = {"timezone": "UTC", "weekly": {"fri": ["12:00-18:00"]}}
    support = line_rules("support", ("a",))
    sales = line_rules("sales", ("s",), hours=hours, outside_hours={"text": "Opens {opens_at}."})
    kit = Kit(support, sales)
    kit.online("a", "s")
    dialog = kit.write("1")  # Friday 08:00 UTC
    assert dialog is not None

    kit.workflow.transfer_to_line(dialog.dialog_id, "sales", kit.now)
    kit.collect()
    assert kit.texts == [(dialog.dialog_id, "Opens Fri 2027-01-15 12:00 (UTC).")]
    assert kit.data("dialog.queued", "1")[-1]["opens_at"] == T0 + 4 * 3600
    kit.advance(4 * 3600)

    assert held(kit, "1").operator_id == "s"


def test_transfer_to_a_line_refusals() -> None:
    kit = Kit(line_rules("support"), line_rules("sales"))
    dialog = kit.write("1")
    assert dialog is not None
    refused(
        kit,
        lambda: kit.workflow.transfer_to_line(dialog.dialog_id, "support", kit.now),
        ConflictError,
        "same_line",
    )
    message = refused(
        kit,
        lambda: kit.workflow.transfer_to_line(dialog.dialog_id, "nowhere", kit.now),
        NotFoundError,
        "not_found",
    )
    assert message == "line 'nowhere' of portal 'p1' has no routing rules"


# -- participants ----------------------------------------------------------------------------


def test_invited_operators_and_silent_supervisors_join_and_leave() -> None:
    kit = Kit(line_rules(members=("a", "b"), capacity={"max_dialogs_per_operator": 1}))
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"

    kit.workflow.invite(dialog.dialog_id, "b", kit.now, by="a")
    kit.dispatcher.put_operator(kit.board.operator("boss"))  # set a status once: known
    kit.workflow.join_silently(dialog.dialog_id, "boss", kit.now)
    kit.collect()

    assert held(kit, "1").participants == (("b", "invited"), ("boss", "supervisor"))
    assert kit.views("1")[-1]["participants"] == [
        {"operator_id": "b", "role": "invited"},
        {"operator_id": "boss", "role": "supervisor"},
    ]
    assert kit.board.load("b", ("offered", "assigned", "answered"), "support") == 0
    kit.write("2")
    assert held(kit, "2").operator_id == "b"  # being invited is not counted as load

    kit.workflow.leave(dialog.dialog_id, "boss", kit.now)
    kit.collect()
    assert kit.data("dialog.participant_joined", "1") == [
        {"operator_id": "b", "role": "invited", "by": "a"},
        {"operator_id": "boss", "role": "supervisor", "by": "boss"},
    ]
    assert kit.data("dialog.participant_left", "1") == [
        {"operator_id": "boss", "role": "supervisor"}
    ]


def test_participant_refusals() -> None:
    kit = Kit(line_rules(members=("a", "b")))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None
    kit.workflow.invite(dialog.dialog_id, "b", kit.now)
    kit.collect()

    refused(
        kit,
        lambda: kit.workflow.invite(dialog.dialog_id, "a", kit.now),
        ConflictError,
        "already_operator",
    )
    message = refused(
        kit,
        lambda: kit.workflow.join_silently(dialog.dialog_id, "b", kit.now),
        ConflictError,
        "already_participant",
    )
    assert message == f"operator 'b' is already in dialog {dialog.dialog_id!r} as invited"
    refused(
        kit,
        lambda: kit.workflow.leave(dialog.dialog_id, "a", kit.now),
        ConflictError,
        "not_participant",
    )
    refused(
        kit,
        lambda: kit.workflow.invite(dialog.dialog_id, "zed", kit.now),
        NotFoundError,
        "not_found",
    )


# -- replies ---------------------------------------------------------------------------------


def reply_text(kit: Kit, chat: str, operator: str | None, **conditions: Any) -> str:
    content = kit.workflow.reply(
        held(kit, chat).dialog_id,
        operator,
        OutboundText(text="Hello"),
        kit.now,
        ReplyConditions(**conditions),
    )
    kit.collect()
    assert isinstance(content.content, OutboundText)
    return content.content.text


def shown(kit: Kit, chat: str, operator: str | None, **conditions: Any) -> ShownReply:
    reply = kit.workflow.reply(
        held(kit, chat).dialog_id,
        operator,
        OutboundText(text="Hello"),
        kit.now,
        ReplyConditions(**conditions),
    )
    kit.collect()
    return reply


def test_the_persona_names_the_operator_where_the_channel_shows_no_sender() -> None:
    kit = Kit(
        line_rules("support", ("a", "b")), line_rules("sales", ("a",), persona={"mode": "hidden"})
    )
    kit.online("a")
    kit.write("1")
    kit.write("2", "sales")
    kit.workflow.set_profile("a", "Anna")
    kit.collect()

    assert reply_text(kit, "1", "a") == "Anna: Hello"
    assert reply_text(kit, "1", None) == "Anna: Hello"  # unnamed: the dialog's operator
    assert reply_text(kit, "1", "b") == "Hello"  # no display name: no prefix
    assert reply_text(kit, "1", "a", shows_sender=True) == "Hello"
    assert reply_text(kit, "2", "a") == "Hello"  # hidden


def test_a_line_name_persona_names_every_reply_alike_and_captions_are_signed() -> None:
    kit = Kit(line_rules(members=("a",), persona={"mode": "line_name", "name": "Acme Support"}))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None

    assert reply_text(kit, "1", "a") == "Acme Support: Hello"
    image = kit.workflow.reply(
        dialog.dialog_id,
        "a",
        OutboundImage(url="https://x/y.png", caption="Look"),
        kit.now,
        ReplyConditions(),
    )
    bare = OutboundFile(url="https://x/y.pdf")
    file = kit.workflow.reply(dialog.dialog_id, "a", bare, kit.now, ReplyConditions())
    assert isinstance(image.content, OutboundImage)
    assert image.content.caption == "Acme Support: Look"
    assert file == ShownReply(bare, None)


AVATAR = "https://cdn.example/anna.png"


def test_a_channel_that_shows_a_sender_gets_the_operators_name_and_avatar_not_a_prefix() -> None:
    kit = Kit(
        line_rules("support", ("a", "b", "c")),
        line_rules("sales", ("a",), persona={"mode": "hidden"}),
    )
    kit.online("a")
    kit.write("1")
    kit.write("2", "sales")
    kit.workflow.set_profile("a", "Anna", AVATAR)
    kit.workflow.set_profile("c", None, AVATAR)
    kit.collect()

    widget = shown(kit, "1", "a", shows_sender=True)
    assert widget == ShownReply(
        OutboundText(text="Hello"), ReplySender(name="Anna", avatar_url=AVATAR)
    )
    # unnamed: the dialog's operator, as for the prefix
    assert shown(kit, "1", None, shows_sender=True).sender == ReplySender(
        name="Anna", avatar_url=AVATAR
    )
    assert shown(kit, "1", "b", shows_sender=True).sender is None  # an empty profile
    assert shown(kit, "1", "c", shows_sender=True).sender == ReplySender(avatar_url=AVATAR)
    assert shown(kit, "2", "a", shows_sender=True) == ShownReply(OutboundText(text="Hello"), None)
    # a channel without a sender: the name before the text, exactly as before; no avatar
    assert shown(kit, "1", "a") == ShownReply(OutboundText(text="Anna: Hello"), None)
    assert shown(kit, "1", "c") == ShownReply(OutboundText(text="Hello"), None)


def test_a_line_name_persona_shows_the_lines_name_and_avatar_where_a_sender_is_shown() -> None:
    persona = {"mode": "line_name", "name": "Acme Support", "avatar_url": AVATAR}
    kit = Kit(
        line_rules("support", ("a",), persona=persona),
        line_rules("sales", ("a",), persona={"mode": "line_name", "name": "Acme Sales"}),
    )
    kit.online("a")
    kit.write("1")
    kit.write("2", "sales")
    kit.workflow.set_profile("a", "Anna", "https://cdn.example/other.png")
    kit.collect()

    assert shown(kit, "1", "a", shows_sender=True).sender == ReplySender(
        name="Acme Support", avatar_url=AVATAR
    )
    assert shown(kit, "2", "a", shows_sender=True).sender == ReplySender(name="Acme Sales")
    assert shown(kit, "1", "a") == ShownReply(OutboundText(text="Acme Support: Hello"), None)


def test_the_first_reply_of_the_operator_answers_an_invited_ones_does_not() -> None:
    kit = Kit(line_rules(members=("a", "b")))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None
    kit.workflow.invite(dialog.dialog_id, "b", kit.now)

    reply_text(kit, "1", "b")
    assert held(kit, "1").state == "assigned"
    reply_text(kit, "1", "a")
    assert held(kit, "1").state == "answered"


def test_a_silent_supervisor_cannot_reply() -> None:
    kit = Kit(line_rules(members=("a", "boss")))
    kit.online("a")
    dialog = kit.write("1")
    assert dialog is not None
    kit.workflow.join_silently(dialog.dialog_id, "boss", kit.now)
    kit.collect()

    message = refused(
        kit, lambda: reply_text(kit, "1", "boss"), ConflictError, "silent_participant"
    )
    assert "silently as a supervisor" in message


def test_a_reply_outside_the_channels_window_is_refused_with_when_it_closed() -> None:
    kit = Kit(line_rules(members=("a",)))
    kit.online("a")
    kit.write("1")  # a dialog without a kept window_closes_at: from the last message
    window = {"window": ReplyWindow(86_400.0), "last_customer_at": T0 + 100}

    kit.now = T0 + 100 + 86_399
    assert reply_text(kit, "1", "a", **window) == "Hello"
    kit.now += 1
    with pytest.raises(WindowClosedError) as raised:
        reply_text(kit, "1", "a", **window)

    assert raised.value.reason == "window_closed"
    assert raised.value.details() == {"closed_at": T0 + 100 + 86_400}
    assert str(raised.value).endswith("the customer writes first")
    assert held(kit, "1").state == "answered"  # by the reply within the window
    kit.now += 10**6
    assert reply_text(kit, "1", "a") == "Hello"  # a channel without a window


def test_the_kept_window_decides_and_its_words_reach_the_operator() -> None:
    kit = Kit(line_rules(members=("a",)))
    human_agent = ReplyWindow(7 * 86_400.0, "the HUMAN_AGENT tag's 7 days")
    kit.dispatcher.window_of = lambda connector_id, key: human_agent
    kit.online("a")
    kit.write("1")
    assert held(kit, "1").window_closes_at == T0 + 7 * 86_400
    # The stored last message says otherwise: the router's kept window wins.
    conditions = {"window": human_agent, "last_customer_at": T0 - 10**7}

    kit.now = T0 + 7 * 86_400 - 1
    assert reply_text(kit, "1", "a", **conditions) == "Hello"
    kit.now += 1
    with pytest.raises(WindowClosedError, match="HUMAN_AGENT tag's 7 days") as raised:
        reply_text(kit, "1", "a", **conditions)
    assert raised.value.closed_at == T0 + 7 * 86_400


def test_a_one_reply_window_closes_with_the_reply_until_the_customer_writes() -> None:
    kit = Kit(line_rules(members=("a",)))
    private = ReplyWindow(7 * 86_400.0, "a private reply", one_reply=True)
    kit.dispatcher.window_of = lambda connector_id, key: private
    kit.online("a")
    kit.write("1")
    kit.now += 60
    assert reply_text(kit, "1", "a", window=private) == "Hello"
    assert held(kit, "1").window_closes_at == kit.now  # what the portal sees at once
    views = [orjson.loads(e.dialog_json) for e in kit.entries_of("1")]
    assert views[-1]["window_closes_at"] == kit.now

    with pytest.raises(WindowClosedError, match=r"one reply\)"):
        reply_text(kit, "1", "a", window=private)
    kit.now += 3600
    kit.write("1")  # another comment: one more reply
    assert held(kit, "1").window_closes_at == kit.now + 7 * 86_400
    assert reply_text(kit, "1", "a", window=private) == "Hello"


def test_a_channel_with_another_form_takes_the_reply_outside_the_window_in_it() -> None:
    kit = Kit(line_rules(members=("a",)))
    kit.dispatcher.window_of = lambda connector_id, key: ReplyWindow(86_400.0)
    kit.online("a")
    kit.write("1")
    with_template = {"window": ReplyWindow(86_400.0), "outside_window_form": "template"}

    assert shown(kit, "1", "a", **with_template).outside_window_form is None  # inside
    kit.now = T0 + 86_400
    outside = shown(kit, "1", "a", **with_template)
    assert outside.outside_window_form == "template"
    assert outside.content == OutboundText(text="Hello")
    with pytest.raises(WindowClosedError):  # a channel without the hook: refused as before
        shown(kit, "1", "a", window=ReplyWindow(86_400.0))


def test_quick_answer_variables_are_filled_in_and_unknown_names_are_empty() -> None:
    text = "Hi {customer_name}, {operator_name} of {line_name} here. {other}"

    assert quick_answer_text(text, "Ann", "Anna", "Support") == (
        "Hi Ann, Anna of Support here. {other}"
    )
    assert quick_answer_text(text, None, None, "support") == "Hi ,  of support here. {other}"


# -- reopening -------------------------------------------------------------------------------


def test_a_customer_writing_within_the_reopen_time_reopens_the_dialog() -> None:
    kit = Kit(
        line_rules(members=("a", "b"), queue={"distribution": "strictly"}, reopen_within_s=600)
    )
    kit.online("a", "b")
    dialog = kit.write("1")
    assert dialog is not None and dialog.operator_id == "a"
    kit.dispatcher.finish(dialog.dialog_id, kit.now, "a")
    kit.collect()
    kit.status("a", "away")
    kit.now += 600
    kit.status("a", "online")

    again = kit.write("1")

    assert again is not None and again.dialog_id == dialog.dialog_id
    assert again.operator_id == "a"  # its last operator, by the CRM chain
    assert kit.types("1")[-4:] == [
        "dialog.reopened",
        "dialog.queued",
        "dialog.assigned",
        "message.received",
    ]
    assert kit.data("dialog.reopened", "1") == [{"closed_at": T0, "closed_reason": "finished"}]
    assert kit.data("dialog.queued", "1")[-1]["reason"] == "reopened"


def test_after_the_reopen_time_the_customer_opens_a_new_dialog() -> None:
    kit = Kit(line_rules(members=("a",), reopen_within_s=600))
    dialog = kit.write("1")
    assert dialog is not None
    kit.dispatcher.finish(dialog.dialog_id, kit.now)
    kit.collect()
    kit.now += 600.5

    again = kit.write("1")

    assert again is not None and again.dialog_id != dialog.dialog_id
    assert "dialog.reopened" not in kit.types("1")


def test_without_reopen_time_a_closed_dialog_stays_closed() -> None:
    kit = Kit(line_rules(members=("a",)))
    dialog = kit.write("1")
    assert dialog is not None
    kit.dispatcher.finish(dialog.dialog_id, kit.now)
    kit.collect()

    again = kit.write("1")

    assert again is not None and again.dialog_id != dialog.dialog_id


# -- reading ---------------------------------------------------------------------------------


def test_an_operators_dialogs_say_how_they_are_in_each() -> None:
    kit = Kit(line_rules(members=("a", "b"), queue={"distribution": "strictly"}, accept=True))
    kit.online("a", "b")
    first = kit.write("1")
    assert first is not None
    kit.dispatcher.accept(first.dialog_id, "a", kit.now)
    kit.now += 1
    second = kit.write("2")  # offered to a
    kit.now += 1
    third = kit.write("3")
    assert second is not None and third is not None
    kit.dispatcher.accept(third.dialog_id, "a", kit.now)  # offered to a as well
    kit.workflow.transfer_to_operator(third.dialog_id, "b", kit.now)
    kit.collect()
    kit.dispatcher.accept(third.dialog_id, "b", kit.now)
    kit.workflow.invite(third.dialog_id, "a", kit.now)
    kit.collect()

    found = [(role, d.dialog_id) for role, d in kit.workflow.dialogs_of("a")]

    assert found == [
        ("operator", first.dialog_id),
        ("offered", second.dialog_id),
        ("invited", third.dialog_id),
    ]
    with pytest.raises(NotFoundError, match="no operator 'zed' in portal 'p1'"):
        kit.workflow.dialogs_of("zed")


def test_the_queue_lists_waiting_dialogs_in_the_order_the_line_serves_them() -> None:
    kit = Kit(line_rules("support"), line_rules("sales", queue={"order": "newest_first"}))
    for chat in ("1", "2", "3"):
        kit.now += 1
        kit.write(chat)
        kit.write(f"s{chat}", "sales")

    assert [d.dialog_key for d in kit.workflow.queue_of("support")] == ["1", "2", "3"]
    assert [d.dialog_key for d in kit.workflow.queue_of("sales")] == ["s3", "s2", "s1"]
