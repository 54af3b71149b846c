"""Operator replies through ``MailboxHost.submit_reply``: a real Telegram connector against
the Bot API stand-in, the outcome delivered to the portal stand-in as an event."""

from __future__ import annotations

import aiohttp
import pytest

from engine.delivery.host import MailboxHost
from engine.errors import AuthError, NotFoundError
from engine.models import DialogInfo, DialogTarget, OutboundText, ReplyRequest, SentReceipt
from tests.engine.conftest import HostKit, eventually
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn


def text(words: str, client_id: str | None = None) -> ReplyRequest:
    return ReplyRequest(content=OutboundText(text=words), client_id=client_id)


@pytest.fixture
async def host(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> MailboxHost:
    kit.add_telegram(telegram_api)
    return await kit.host(kit.config(portal, linger_ms=0, retry_initial_s=1, retry_max_s=1))


@pytest.fixture
def dialog(kit: HostKit) -> DialogInfo:
    return kit.dialog("p1", "42")


def sent_texts(api: TelegramApiStandIn) -> list[str]:
    return [call.params["text"] for call in api.calls_to("sendMessage")]


async def test_a_sent_reply_is_reported_to_the_portal(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogInfo,
) -> None:
    reply_id = await host.submit_reply("p1", "req-1", dialog, text("Hello", client_id="c-1"))
    (event,) = await portal.wait_for_events(1)
    assert event["type"] == "reply.sent"
    assert event["data"] == {
        "reply_id": reply_id,
        "client_id": "c-1",
        "channel_message_ids": ["1000"],
    }
    assert event["seq"] == 1
    assert event["dialog"]["id"] == dialog.dialog_id
    assert event["dialog"]["opened"] is False
    (call,) = telegram_api.calls_to("sendMessage")
    assert call.params == {"chat_id": "42", "text": "Hello"}
    assert call.token == telegram_api.token
    assert kit.reader().replies("p1") == []
    counted = host.counters.value("openlines_replies_total", portal="p1", outcome="reply.sent")
    assert counted == 1


async def test_a_rate_limit_is_waited_out_on_the_clock(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogInfo,
) -> None:
    telegram_api.rate_limit_next(7, method="sendMessage")
    reply_id = await host.submit_reply("p1", "req-1", dialog, text("Hello"))
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    (stored,) = kit.reader().replies("p1")
    assert (stored.reply_id, stored.attempts) == (reply_id, 1)
    assert stored.next_attempt_at == kit.clock.now() + 7

    await kit.clock.advance(6.9)
    assert kit.clock.sleepers == 1
    assert len(telegram_api.calls) == 1

    await kit.clock.advance(0.2)
    (event,) = await portal.wait_for_events(1)
    assert event["type"] == "reply.sent"
    assert sent_texts(telegram_api) == ["Hello", "Hello"]


async def test_a_blocked_bot_fails_the_reply_with_the_reason(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogInfo,
) -> None:
    telegram_api.block_next(method="sendMessage")
    reply_id = await host.submit_reply("p1", "req-1", dialog, text("Hello", client_id="c-9"))
    (event,) = await portal.wait_for_events(1)
    assert event["type"] == "reply.failed"
    assert event["data"]["reply_id"] == reply_id
    assert event["data"]["client_id"] == "c-9"
    assert event["data"]["reason"] == "send_failed"
    assert "bot was blocked by the user" in event["data"]["error"]
    await kit.clock.advance(60)
    assert len(telegram_api.calls) == 1  # a permanent failure is not retried
    counted = host.counters.value("openlines_replies_total", portal="p1", outcome="reply.failed")
    assert counted == 1


async def test_replies_to_one_dialog_are_sent_in_order(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogInfo,
) -> None:
    telegram_api.rate_limit_next(3, method="sendMessage")
    ids = [
        await host.submit_reply("p1", f"req-{n}", dialog, text(words))
        for n, words in enumerate(["one", "two", "three"])
    ]
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    assert len(telegram_api.calls) == 1  # two and three wait behind one
    await kit.clock.advance(3)
    events = await portal.wait_for_events(3)
    assert sent_texts(telegram_api) == ["one", "one", "two", "three"]
    assert [e["data"]["reply_id"] for e in events] == ids
    assert [e["data"]["channel_message_ids"] for e in events] == [["1000"], ["1001"], ["1002"]]
    assert [e["seq"] for e in events] == [1, 2, 3]


async def test_a_rate_limit_delays_only_its_own_dialog(
    kit: HostKit,
    host: MailboxHost,
    portal: PortalStandIn,
    telegram_api: TelegramApiStandIn,
    dialog: DialogInfo,
) -> None:
    telegram_api.rate_limit_next(30, method="sendMessage")
    await host.submit_reply("p1", "req-1", dialog, text("to 42"))
    await eventually(lambda: kit.clock.sleepers == 1)
    other = kit.dialog("p1", "43")
    await host.submit_reply("p1", "req-2", other, text("to 43"))
    (event,) = await portal.wait_for_events(1)
    assert event["dialog"]["id"] == other.dialog_id
    assert sent_texts(telegram_api) == ["to 42", "to 43"]


async def test_a_replayed_request_id_is_refused(
    host: MailboxHost, telegram_api: TelegramApiStandIn, dialog: DialogInfo
) -> None:
    await host.submit_reply("p1", "req-1", dialog, text("Hello"))
    with pytest.raises(AuthError, match=r"request id 'req-1' was already used \(replay\)"):
        await host.submit_reply("p1", "req-1", dialog, text("Hello again"))
    await eventually(lambda: len(telegram_api.calls) == 1)
    assert sent_texts(telegram_api) == ["Hello"]


async def test_a_portal_not_served_here_is_refused(host: MailboxHost, dialog: DialogInfo) -> None:
    with pytest.raises(NotFoundError, match=r"portal 'p9' is not served here yet"):
        await host.submit_reply("p9", "req-1", dialog, text("Hello"))


async def test_a_removed_connector_fails_the_reply(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    dialog = kit.dialog("p1", "42").model_copy(update={"connector_id": "tg-gone"})
    await host.submit_reply("p1", "req-1", dialog, text("Hello"))
    (event,) = await portal.wait_for_events(1)
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "not_found"
    assert "tg-gone" in event["data"]["error"]


async def test_a_reply_not_sent_within_the_ttl_fails_as_expired(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn, dialog: DialogInfo
) -> None:
    kit.add_telegram(telegram_api)
    host = await kit.host(
        kit.config(portal, linger_ms=0, ttl_s=10, retry_initial_s=1, retry_max_s=1)
    )
    for _ in range(100):
        telegram_api.fail_next(500, "Internal Server Error", method="sendMessage")
    await host.submit_reply("p1", "req-1", dialog, text("Hello"))
    await kit.pump(lambda: len(portal.events) == 1, step_s=1)
    (event,) = portal.events
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "expired"
    assert "Internal Server Error" in event["data"]["error"]
    assert 9 <= len(telegram_api.calls) <= 12  # about one a second for ten seconds


async def test_a_stored_reply_is_sent_after_a_restart(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn, dialog: DialogInfo
) -> None:
    kit.add_telegram(telegram_api)
    config = kit.config(portal, linger_ms=0)
    first = await kit.host(config)
    telegram_api.rate_limit_next(20, method="sendMessage")
    reply_id = await first.submit_reply("p1", "req-1", dialog, text("Hello"))
    await eventually(lambda: len(telegram_api.calls) == 1 and kit.clock.sleepers == 1)
    await kit.close_host(first)

    second = await kit.host(config)
    await kit.advance_when_waiting(20)
    (event,) = await portal.wait_for_events(1)
    assert event["data"]["reply_id"] == reply_id
    assert sent_texts(telegram_api) == ["Hello", "Hello"]
    with pytest.raises(AuthError, match="already used"):
        await second.submit_reply("p1", "req-1", dialog, text("Hello"))


class BrokenPlugin:
    """A channel plug-in with a bug: ``send`` raises what no channel should."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt:
        self.calls += 1
        raise KeyError("message_id")


async def test_a_plug_in_bug_fails_the_reply_instead_of_stranding_it(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn, dialog: DialogInfo
) -> None:
    plugin = BrokenPlugin()
    kit.channels.put(dialog.connector_id, plugin)
    await host.submit_reply("p1", "req-1", dialog, text("Hello"))
    (event,) = await portal.wait_for_events(1, timeout_s=5)
    assert event["type"] == "reply.failed"
    assert event["data"]["reason"] == "internal_error"
    assert event["data"]["error"] == "KeyError: 'message_id'"
    assert plugin.calls == 1
    assert host.counters.value("openlines_rejected_total", reason="channel_bug") == 1
    assert kit.reader().replies("p1") == []
