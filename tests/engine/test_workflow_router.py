"""The operator's workflow through a portal's router on a real SQLite file, a Telegram
connector against the Bot API stand-in and the portal stand-in, time on a manual clock:
what a restart recovers, replies with a persona and quick answers, reopening, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.api_models import ReplyBody
from engine.delivery.host import MailboxHost
from engine.errors import ConflictError, NotFoundError
from engine.models import OutboundText
from engine.routing.rules import load_rules
from engine.routing.state import DialogState
from tests.engine.conftest import RULES, TG_CONNECTOR, HostKit, eventually, write_rules
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn

ONLINE_NOW = "  require_accept: false\nreopen_within_s: 300\n"
"""Added to portal p1's line: assigned without accepting, reopened within 5 minutes."""


@pytest.fixture
async def host(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn, tmp_path: Path
) -> MailboxHost:
    rules_dir = tmp_path / "workflow_rules"
    write_rules(rules_dir, {**RULES, "p1-support.yaml": RULES["p1-support.yaml"] + ONLINE_NOW})
    kit.rules = load_rules(rules_dir, 1)
    kit.add_telegram(telegram_api)
    lines = [{"id": "support", "name": "Acme Support"}, {"id": "sales"}]
    return await kit.host(kit.config(portal, linger_ms=0, lines=lines))


async def assigned_dialog(kit: HostKit, host: MailboxHost, chat: str = "42") -> DialogState:
    router = await host.router("p1")
    await router.set_operator("op-a", "online", True)
    dialog = await kit.dialog(host, "p1", chat)
    assert dialog.operator_id == "op-a"
    return dialog


def sent_texts(api: TelegramApiStandIn) -> list[str]:
    return [call.params["text"] for call in api.calls_to("sendMessage")]


async def test_a_restart_recovers_pins_participants_blocks_profiles_and_quick_answers(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    kept = await assigned_dialog(kit, host, "42")
    spam = await kit.dialog(host, "p1", "66")
    await router.pin(kept.dialog_id, "op-a")
    await router.invite(kept.dialog_id, "op-b", "op-a")
    await router.decline(spam.dialog_id, "op-a", True, None, True)
    await router.set_profile("op-a", "Anna", "https://cdn.example/anna.png")
    await router.set_profile("op-b", "Boris", None)
    answer = await router.quick_answers.create("support", "Hello", "Hi!")
    await portal.wait_for_events(1, "dialog.closed")
    await kit.close_host(host)

    again = await kit.host(kit.config(portal, linger_ms=0))
    router = await again.router("p1")
    dialog = await router.dialog(kept.dialog_id)
    assert dialog.pinned and dialog.participants == (("op-b", "invited"),)
    assert router.dispatcher.board.operator("op-a").display_name == "Anna"
    assert router.dispatcher.board.operator("op-a").avatar_url == "https://cdn.example/anna.png"
    assert router.dispatcher.board.operator("op-b").avatar_url is None
    assert await router.quick_answers.of_line("support") == [answer]
    # Blocked as ownership is keyed: the customer's contact (docs/crm.md).
    assert set(router.dispatcher.board.blocked) == {spam.identity}
    assert spam.contact_id is not None and spam.identity == spam.contact_id

    kept_message = kit.record("66", 999)
    await again.append([kept_message])  # the blocked customer writes again
    await eventually(  # counted once the step committed
        lambda: again.counters.value("openlines_blocked_messages_total", portal="p1") == 1
    )
    assert router.dispatcher.board.blocked[spam.identity].messages == 1
    assert f"{TG_CONNECTOR}\x0066" not in router.dispatcher.board.open_by_ref
    block = await router.unblock(TG_CONNECTOR, "66", "op-a")
    (unblocked,) = await portal.wait_for_events(1, "customer.")
    assert kept_message.event_id not in {e["id"] for e in portal.events}  # not delivered
    assert unblocked["dialog"]["id"] == spam.dialog_id == block.dialog_id
    assert unblocked["data"] == {
        "connector_id": TG_CONNECTOR,
        "customer_id": "66",
        "by": "op-a",
        "messages": 1,
    }
    _, events = await router.history(spam.dialog_id, 50, None)
    assert [(e.kind, e.delivered) for e in events][-2:] == [
        ("message.received", False),
        ("customer.unblocked", True),
    ]


async def test_a_quick_answer_is_filled_in_and_signed_with_the_operators_name(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    router = await host.router("p1")
    dialog = await assigned_dialog(kit, host)
    await router.set_profile("op-a", "Anna", None)
    answer = await router.quick_answers.create(
        "support", "Greeting", "Hello {customer_name}, {operator_name} of {line_name} here."
    )

    reply_id = await router.reply(
        dialog.dialog_id, ReplyBody(quick_answer_id=answer.answer_id, operator_id="op-a")
    )
    await router.reply(dialog.dialog_id, ReplyBody(content=OutboundText(text="How can I help?")))
    await portal.wait_for_events(2, "reply.")

    assert sent_texts(telegram_api) == [
        "Anna: Hello customer 42, Anna of Acme Support here.",
        "Anna: How can I help?",  # unnamed: the dialog's operator
    ]
    _, events = await router.history(dialog.dialog_id, 50, None)
    sent = [e for e in events if e.kind == "reply.sent"]
    assert sent[0].payload.startswith(b'{"reply_id":"%s"' % reply_id.encode())
    assert b'"text":"Anna: Hello customer 42, Anna of Acme Support here."' in (
        sent[0].reply_json or b""
    )
    with pytest.raises(NotFoundError, match="no quick answer 'qa_nope' in portal 'p1'"):
        await router.reply(dialog.dialog_id, ReplyBody(quick_answer_id="qa_nope"))
    with pytest.raises(NotFoundError, match="portal 'p1' has no line 'night'"):
        await router.quick_answers.create("night", "x", "y")


async def test_quick_answers_are_edited_removed_and_kept_to_their_line(
    kit: HostKit, host: MailboxHost, telegram_api: TelegramApiStandIn
) -> None:
    router = await host.router("p1")
    dialog = await assigned_dialog(kit, host)
    answer = await router.quick_answers.create("support", "Hello", "Hi!")
    sales = await router.quick_answers.create("sales", "Price", "It costs 5.")
    edited = await router.quick_answers.update(answer.answer_id, "Hello", "Hi again!")
    assert [a.text for a in await router.quick_answers.of_line("support")] == ["Hi again!"]
    assert edited.created_at == answer.created_at

    with pytest.raises(ConflictError, match=r"is line 'sales'.s; dialog .* is on line 'support'"):
        await router.reply(dialog.dialog_id, ReplyBody(quick_answer_id=sales.answer_id))
    await router.quick_answers.delete(answer.answer_id)
    with pytest.raises(NotFoundError, match=f"no quick answer {answer.answer_id!r}"):
        await router.reply(dialog.dialog_id, ReplyBody(quick_answer_id=answer.answer_id))
    assert telegram_api.calls_to("sendMessage") == []
    assert kit.reader().replies("p1") == []


async def test_a_customer_writing_soon_after_the_finish_reopens_the_dialog(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    dialog = await assigned_dialog(kit, host)
    await router.finish(dialog.dialog_id, "op-a")
    with pytest.raises(ConflictError) as closed:
        await router.reply(dialog.dialog_id, ReplyBody(content=OutboundText(text="late")))
    assert closed.value.reason == "dialog_closed"

    await kit.clock.advance(299)
    reopened = await kit.dialog(host, "p1", "42")

    assert reopened.dialog_id == dialog.dialog_id and reopened.operator_id == "op-a"
    await portal.wait_for_events(1, "dialog.reopened")
    assert host.counters.value("openlines_dialogs_opened_total", portal="p1") == 1
    await kit.clock.advance(1)
    await router.finish(dialog.dialog_id, "op-a")
    await kit.clock.advance(301)
    fresh = await kit.dialog(host, "p1", "42")
    assert fresh.dialog_id != dialog.dialog_id
    await eventually(
        lambda: host.counters.value("openlines_dialogs_opened_total", portal="p1") == 2,
        what="the new dialog counted",
    )


async def test_the_history_pages_through_what_the_portal_was_delivered(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    dialog = await assigned_dialog(kit, host)
    await router.pin(dialog.dialog_id, "op-a")
    await portal.wait_for_events(4)
    await eventually(lambda: kit.reader().pending("p1", 0, 1, 10) == [], what="delivered")

    first, events = await router.history(dialog.dialog_id, 3, None)
    _, rest = await router.history(dialog.dialog_id, 3, events[-1].event_id)

    assert first.pinned
    assert [e.event_id for e in events + rest] == [e["id"] for e in portal.events]
    with pytest.raises(NotFoundError, match="no dialog 'dlg_nope' for portal 'p1'"):
        await router.history("dlg_nope", 3, None)
