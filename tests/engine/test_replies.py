"""Replies through the dialog's owner (``PortalRouter.reply``): a real Telegram connector
against the Bot API stand-in, the outcome delivered to the portal stand-in as an event in the
dialog's stream. A reply whose attempt a restart cut short is sent again only where the
provider drops repeats (VK), and is otherwise reported ``reply.uncertain``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from channels.telegram import TelegramChannel
from channels.vk import random_id
from engine.api_models import ReplyBody
from engine.delivery.host import MailboxHost
from engine.errors import AuthError, ConflictError, NotFoundError
from engine.models import DialogTarget, OutboundText, ReplyRequest, Route, SentReceipt
from engine.routing.rules import load_rules
from engine.routing.state import DialogState
from engine.routing.windows import ReplyWindow
from engine.store.records import dialog_ref
from tests.engine.conftest import (
    LINE_ID,
    RULES,
    TG_CONNECTOR,
    ChannelBook,
    HostKit,
    eventually,
    write_rules,
)
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn
from tests.standins.vk_api import VkApiStandIn

Event = dict[str, Any]


def text(words: str, client_id: str | None = None) -> ReplyBody:
    return ReplyBody(content=OutboundText(text=words), client_id=client_id)


async def send(
    host: MailboxHost, dialog: DialogState, body: ReplyBody, operator_id: str | None = None
) -> str:
    """What the portal API does for a reply: the dialog's owner stores and queues it."""
    return await (await host.router("p1")).reply(
        dialog.dialog_id, body.model_copy(update={"operator_id": operator_id})
    )


@pytest.fixture
async def host(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> MailboxHost:
    kit.add_telegram(telegram_api)
    return await kit.host(kit.config(portal, linger_ms=0, retry_initial_s=1, retry_max_s=1))


@pytest.fixture
async def dialog(kit: HostKit, host: MailboxHost) -> DialogState:
    """Chat 42's dialog, opened by the customer writing first (nobody is online)."""
    return await kit.dialog(host, "p1", "42")


def sent_texts(api: TelegramApiStandIn) -> list[str]:
    return [call.params["text"] for call in api.calls_to("sendMessage")]


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


def shows(
    event: Event, dialog: DialogState, state: str = "waiting", operator_id: str | None = None
) -> bool:
    """The event carries the dialog's view as it stood there."""
    expected: dict[str, object] = {
        "id": dialog.dialog_id,
        "line_id": LINE_ID,
        "connector_id": dialog.connector_id,
        "channel": dialog.channel,
        "customer_id": dialog.customer_id,
        "state": state,
        "operator_id": operator_id,
        "offered_to": [],
        "contact_id": dialog.contact_id,
        "lead_id": dialog.lead_id,
        "pinned": False,
        "participants": [],
        "held": None,
        "window_closes_at": None,
    }
    return dialog.contact_id is not None and bool(event["dialog"] == expected)


async def test_a_sent_reply_is_reported_to_the_portal(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    reply_id = await send(host, dialog, text("Hello", client_id="c-1"))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.sent"
    assert event["data"] == {
        "reply_id": reply_id,
        "client_id": "c-1",
        "origin": "operator",
        "channel_message_ids": ["1000"],
        "form": "message",
        "template": None,
    }
    # the stream: the dialog opened, the customer's message, then the outcome
    assert types(portal.events) == ["dialog.queued", "message.received", "reply.sent"]
    assert event["seq"] == 3
    assert shows(event, dialog)
    (call,) = telegram_api.calls_to("sendMessage")
    assert call.params == {"chat_id": "42", "text": "Hello", "parse_mode": "HTML"}
    assert call.token == telegram_api.token
    assert kit.reader().replies("p1") == []
    counted = host.counters.value("openlines_replies_total", portal="p1", outcome="reply.sent")
    assert counted == 1


async def test_a_rate_limit_is_waited_out_on_the_clock(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    telegram_api.rate_limit_next(7, method="sendMessage")
    reply_id = await send(host, dialog, text("Hello"))
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    (stored,) = kit.reader().replies("p1")
    assert (stored.reply_id, stored.attempts, stored.origin) == (reply_id, 1, "operator")
    assert stored.next_attempt_at == kit.clock.now() + 7
    assert stored.attempt_started_at is None  # Telegram answered 429: the outcome is known
    assert DialogTarget.model_validate_json(stored.target_json) == DialogTarget(
        dialog_id=dialog.dialog_id,
        route=Route(portal_id="p1", line_id=LINE_ID, connector_id=TG_CONNECTOR, channel="telegram"),
        dialog_key="42",
        customer_id="42",
    )

    await kit.clock.advance(6.9)
    assert kit.clock.sleepers == 1
    assert len(telegram_api.calls) == 1

    await kit.clock.advance(0.2)
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.sent"
    assert sent_texts(telegram_api) == ["Hello", "Hello"]


async def test_a_blocked_bot_fails_the_reply_with_the_reason(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    telegram_api.block_next(method="sendMessage")
    reply_id = await send(host, dialog, text("Hello", client_id="c-9"))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.failed"
    assert event["data"]["reply_id"] == reply_id
    assert event["data"]["client_id"] == "c-9"
    assert event["data"]["origin"] == "operator"
    assert event["data"]["reason"] == "send_failed"
    assert "bot was blocked by the user" in event["data"]["error"]
    assert shows(event, dialog)
    await kit.clock.advance(60)
    assert len(telegram_api.calls) == 1  # a permanent failure is not retried
    counted = host.counters.value("openlines_replies_total", portal="p1", outcome="reply.failed")
    assert counted == 1


async def test_replies_to_one_dialog_are_sent_in_order(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    telegram_api.rate_limit_next(3, method="sendMessage")
    ids = [await send(host, dialog, text(words)) for words in ["one", "two", "three"]]
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    assert len(telegram_api.calls) == 1  # two and three wait behind one
    await kit.clock.advance(3)
    events = await portal.wait_for_events(3, "reply.")
    assert sent_texts(telegram_api) == ["one", "one", "two", "three"]
    assert [e["data"]["reply_id"] for e in events] == ids
    assert [e["data"]["channel_message_ids"] for e in events] == [["1000"], ["1001"], ["1002"]]
    assert [e["seq"] for e in events] == [3, 4, 5]  # after dialog.queued and the message


async def test_a_rate_limit_delays_only_its_own_dialog(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    telegram_api.rate_limit_next(30, method="sendMessage")
    await send(host, dialog, text("to 42"))
    await eventually(lambda: kit.clock.sleepers == 1)
    other = await kit.dialog(host, "p1", "43")
    await send(host, other, text("to 43"))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["dialog"]["id"] == other.dialog_id
    assert sent_texts(telegram_api) == ["to 42", "to 43"]


async def test_the_assigned_operators_first_reply_answers_the_dialog(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
) -> None:
    router = await host.router("p1")
    await router.set_operator("op-a", "online", None)
    await router.set_operator("op-b", "online", None)
    dialog = await kit.dialog(host)
    await router.accept(dialog.dialog_id, "op-a")
    await send(host, dialog, text("from b"), "op-b")  # not its operator: still unanswered
    assert (await router.dialog(dialog.dialog_id)).state == "assigned"
    await portal.wait_for_events(1, "reply.")  # its outcome before the next reply
    await send(host, dialog, text("from a"), "op-a")
    await send(host, dialog, text("again"), "op-a")
    assert (await router.dialog(dialog.dialog_id)).state == "answered"

    await portal.wait_for_events(3, "reply.")
    events = portal.events
    assert types(events) == [
        "dialog.queued",
        "dialog.offered",
        "message.received",
        "dialog.assigned",
        "reply.sent",
        "dialog.answered",
        "reply.sent",
        "reply.sent",
    ]
    answered = events[5]
    assert answered["data"] == {"operator_id": "op-a"}
    assert shows(answered, dialog, "answered", "op-a")
    assert shows(events[4], dialog, "assigned", "op-a")  # op-b's reply
    assert all(shows(e, dialog, "answered", "op-a") for e in events[6:])
    assert sent_texts(telegram_api) == ["from b", "from a", "again"]


async def test_a_line_text_is_sent_and_reported_with_origin_line(
    kit: HostKit,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    tmp_path: Path,
) -> None:
    rules_dir = tmp_path / "told_position"
    write_rules(
        rules_dir,
        {"p1-support.yaml": RULES["p1-support.yaml"] + "queue_position:\n  on_join: true\n"},
    )
    kit.rules = load_rules(rules_dir, 1)
    kit.add_telegram(telegram_api)
    host = await kit.host(kit.config(portal, linger_ms=0))
    dialog = await kit.dialog(host)
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.sent"
    assert event["data"]["origin"] == "line"
    assert event["data"]["client_id"] is None
    assert shows(event, dialog)
    assert sent_texts(telegram_api) == ["You are number 1 in the queue. Expected wait: 5 min."]
    assert types(portal.events) == ["dialog.queued", "message.received", "reply.sent"]


async def test_a_replayed_request_id_is_refused(
    host: MailboxHost, telegram_api: TelegramApiStandIn, dialog: DialogState
) -> None:
    await host.check_request("p1", "req-1")
    await send(host, dialog, text("Hello"))
    with pytest.raises(AuthError, match=r"request id 'req-1' was already used \(replay\)"):
        await host.check_request("p1", "req-1")
    await eventually(lambda: len(telegram_api.calls) == 1)
    assert sent_texts(telegram_api) == ["Hello"]


async def test_a_portal_not_served_here_is_refused(host: MailboxHost) -> None:
    with pytest.raises(NotFoundError, match=r"portal 'p9' is not served here yet"):
        (await host.router("p9"))


async def test_a_reply_to_a_dialog_that_is_not_open_is_refused(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    router = await host.router("p1")
    with pytest.raises(NotFoundError, match=r"no dialog 'dlg_nope' for portal 'p1'"):
        await router.reply("dlg_nope", text("Hello"))
    await router.finish(dialog.dialog_id, None)  # e.g. the portal closed it
    with pytest.raises(ConflictError, match=r"is closed \(finished\): the customer writes first"):
        await send(host, dialog, text("Hello"))
    await portal.wait_for_events(1, "dialog.closed")
    assert types(portal.events) == ["dialog.queued", "message.received", "dialog.closed"]
    assert kit.reader().replies("p1") == []
    assert telegram_api.calls == []


async def test_a_removed_connector_fails_the_reply(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    await host.append([kit.record("42", 1, connector_id="tg-gone")])
    board = (await host.router("p1")).dispatcher.board
    ref = dialog_ref("tg-gone", "42")
    await eventually(lambda: ref in board.open_by_ref, what="the dialog on tg-gone")
    dialog = board.dialogs[board.open_by_ref[ref]]
    await send(host, dialog, text("Hello"))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "not_found"
    assert "tg-gone" in event["data"]["error"]
    assert event["dialog"]["connector_id"] == "tg-gone"


async def test_a_reply_not_sent_within_the_ttl_fails_as_expired(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    kit.add_telegram(telegram_api)
    host = await kit.host(
        kit.config(portal, linger_ms=0, ttl_s=10, retry_initial_s=1, retry_max_s=1)
    )
    dialog = await kit.dialog(host)
    for _ in range(100):
        telegram_api.fail_next(500, "Internal Server Error", method="sendMessage")
    await send(host, dialog, text("Hello"))
    await kit.pump(lambda: len(portal.of_types("reply.")) == 1, step_s=1)
    (event,) = portal.of_types("reply.")
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "expired"
    assert "Internal Server Error" in event["data"]["error"]
    assert 9 <= len(telegram_api.calls) <= 12  # about one a second for ten seconds


async def test_a_stored_reply_is_sent_after_a_restart(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    kit.add_telegram(telegram_api)
    config = kit.config(portal, linger_ms=0)
    first = await kit.host(config)
    dialog = await kit.dialog(first)
    telegram_api.rate_limit_next(20, method="sendMessage")
    await first.check_request("p1", "req-1")
    reply_id = await send(first, dialog, text("Hello"))
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    await kit.close_host(first)

    second = await kit.host(config)
    await kit.advance_when_waiting(20)
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["data"]["reply_id"] == reply_id
    assert shows(event, dialog)  # the restarted owner stamps the dialog it loaded
    assert sent_texts(telegram_api) == ["Hello", "Hello"]
    with pytest.raises(AuthError, match="already used"):
        await second.check_request("p1", "req-1")


class BrokenPlugin:
    """A channel plug-in with a bug: ``send`` raises what no channel should."""

    idempotent_sends = False
    shows_sender = False

    def __init__(self) -> None:
        self.calls = 0

    def reply_window_for(self, dialog_key: str) -> ReplyWindow | None:
        return None

    async def send_outside_window(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        return await self.send(session, target, request, reply_id=reply_id)

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        self.calls += 1
        raise KeyError("message_id")


async def test_a_plug_in_bug_fails_the_reply_instead_of_stranding_it(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn, dialog: DialogState
) -> None:
    plugin = BrokenPlugin()
    kit.channels.put(dialog.connector_id, plugin)
    await send(host, dialog, text("Hello"))
    (event,) = await portal.wait_for_events(1, "reply.", timeout_s=5)
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "internal_error"
    assert event["data"]["error"] == "KeyError: 'message_id'"
    assert plugin.calls == 1
    assert host.counters.value("openlines_rejected_total", reason="channel_bug") == 1
    assert kit.reader().replies("p1") == []


# -- an attempt cut short by a restart ---------------------------------------------------------


async def held_when_stopped(
    kit: HostKit, portal: PortalStandIn, arrived: asyncio.Event, dialog_key: str = "42", **via: Any
) -> tuple[str, DialogState]:
    """A host that stops while the provider holds the reply's only attempt: the provider has
    the message, its answer never came back. Returns the reply id and its dialog."""
    first = await kit.host(kit.config(portal, linger_ms=0))
    dialog = await kit.dialog(first, "p1", dialog_key, **via)
    await portal.wait_for_events(2)  # the dialog opened, and the portal acknowledged it
    await eventually(lambda: kit.reader().open_batches("p1") == [], what="the ack")
    reply_id = await send(first, dialog, text("Hello", client_id="c-1"))
    await asyncio.wait_for(arrived.wait(), 10)
    (stored,) = kit.reader().replies("p1")
    assert (stored.reply_id, stored.attempts) == (reply_id, 1)
    assert stored.attempt_started_at == kit.clock.now()  # recorded before the provider had it
    await kit.close_host(first)
    return reply_id, dialog


async def test_a_telegram_reply_cut_short_by_a_restart_is_uncertain_and_not_sent_again(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    kit.add_telegram(telegram_api)
    arrived = telegram_api.hold_next("sendMessage")
    reply_id, dialog = await held_when_stopped(kit, portal, arrived)

    second = await kit.host(kit.config(portal, linger_ms=0))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.uncertain"
    assert event["data"] == {
        "reply_id": reply_id,
        "client_id": "c-1",
        "origin": "operator",
        "reason": "interrupted",
        "attempts": 1,
        "error": "the engine stopped during attempt 1, before telegram answered: the customer"
        " may have it, and telegram cannot tell a repeat from a new message",
    }
    assert shows(event, dialog)
    assert types(portal.events) == ["dialog.queued", "message.received", "reply.uncertain"]
    assert kit.reader().replies("p1") == []  # settled: nothing left to send later
    assert sent_texts(telegram_api) == ["Hello"]  # exactly one sendMessage
    counted = second.counters.value(
        "openlines_replies_total", portal="p1", outcome="reply.uncertain"
    )
    assert counted == 1


async def test_a_vk_reply_cut_short_by_a_restart_is_sent_again_under_the_same_random_id(
    kit: HostKit, portal: PortalStandIn, vk_api: VkApiStandIn
) -> None:
    route = kit.add_vk(vk_api)
    arrived = vk_api.hold_next("messages.send")
    reply_id, dialog = await held_when_stopped(kit, portal, arrived, route=route)

    second = await kit.host(kit.config(portal, linger_ms=0))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.sent"
    assert event["data"] == {
        "reply_id": reply_id,
        "client_id": "c-1",
        "origin": "operator",
        "channel_message_ids": ["2000"],  # the message VK delivered before the restart
        "form": "message",
        "template": None,
    }
    assert shows(event, dialog)
    held, resent = vk_api.calls
    assert held.params == resent.params  # the same call, random_id included
    assert held.params["random_id"] == str(random_id(reply_id, 0))
    assert vk_api.delivered == [held]  # VK dropped the repeat: the customer has it once
    assert kit.reader().replies("p1") == []
    assert second.counters.value("openlines_replies_total", portal="p1", outcome="reply.sent") == 1


async def test_a_reply_cut_short_whose_connector_is_gone_is_uncertain_not_failed(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    kit.add_telegram(telegram_api)
    arrived = telegram_api.hold_next("sendMessage")
    reply_id, _ = await held_when_stopped(kit, portal, arrived)

    kit.channels = ChannelBook()  # the connector was removed while the engine was down
    await kit.host(kit.config(portal, linger_ms=0))
    (event,) = await portal.wait_for_events(1, "reply.")
    assert event["type"] == "reply.uncertain"  # it may well have reached the customer
    assert event["data"]["reply_id"] == reply_id
    assert event["data"]["error"] == (
        "the engine stopped during attempt 1, before telegram answered: the customer may have"
        " it, and it cannot be sent again (unknown connector 'tg-1')"
    )
    assert sent_texts(telegram_api) == ["Hello"]


async def test_replies_to_one_chat_are_paced_to_telegrams_per_chat_limit(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogState,
) -> None:
    """Telegram takes about one message a second per chat, short bursts tolerated: a burst
    goes at once, then one a second on the engine's clock (docs/channels/telegram.md)."""
    per_chat = TelegramChannel.send_rate.per_chat
    assert per_chat is not None and per_chat.per_s == 1
    burst = int(per_chat.burst)
    words = [str(n) for n in range(burst + 2)]
    for word in words:
        await send(host, dialog, text(word))
    await eventually(lambda: len(telegram_api.calls) == burst and kit.clock.sleepers == 1)
    await kit.clock.advance(0.9)
    assert len(telegram_api.calls) == burst
    await kit.clock.advance(0.1)
    await eventually(lambda: len(telegram_api.calls) == burst + 1 and kit.clock.sleepers == 1)
    await kit.clock.advance(1)
    await portal.wait_for_events(burst + 2, "reply.")
    assert sent_texts(telegram_api) == words
