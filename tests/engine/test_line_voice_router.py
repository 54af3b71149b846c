"""The line's own messages and its bot through a portal's router: a real SQLite file, a
Telegram connector against the Bot API stand-in, the portal stand-in, a manual clock.
What is stored (consent with the CRM contact, the bot's state, the timers' facts) survives a
restart of the host, and the texts reach Telegram with their buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.api_models import ReplyBody
from engine.crm.calls import GetContact
from engine.delivery.host import MailboxHost
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.models import Customer, InboundMessage, OutboundText, Route, TextContent
from engine.routing.rules import load_rules
from engine.store.records import OutboxRecord, dialog_ref
from tests.engine.conftest import LINE_ID, TG_CONNECTOR, HostKit, eventually, write_rules
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn

LINE = """portal: p1
line: support
queue:
  members: [{operator: op-a}]
  require_accept: false
messages:
  consent:
    required_before_routing: true
    text: "May we process your data?"
    accept_label: "Yes"
    decline_label: "No"
  follow_ups:
    - {after_s: 3600, text: "Still with us, {customer_name}?"}
  auto_close: {after_s: 7200, text: "Closed."}
bot:
  menu:
    text: "How can I help?"
    items:
      - {label: "Operator", handover: true}
  handover: {after_misses: 2}
  fallback: "Pardon?"
"""


@pytest.fixture
async def host(
    kit: HostKit, portal: PortalStandIn, telegram_api: TelegramApiStandIn, tmp_path: Path
) -> MailboxHost:
    rules_dir = tmp_path / "voice_rules"
    write_rules(rules_dir, {"p1-support.yaml": LINE})
    kit.rules = load_rules(rules_dir, 1)
    kit.add_telegram(telegram_api)
    return await kit.host(kit.config(portal, linger_ms=0, lines=[{"id": "support"}]))


def says(kit: HostKit, order_key: int, text: str, press: str | None = None) -> OutboxRecord:
    """Customer 42 writes ``text`` (a press of the button with ``press`` as its payload)."""
    extras = {"button_payload": press} if press else {}
    return outbox_record(
        InboundMessage(
            id=inbound_event_id(TG_CONNECTOR, str(order_key)),
            route=Route(
                portal_id="p1", line_id=LINE_ID, connector_id=TG_CONNECTOR, channel="telegram"
            ),
            dialog_key="42",
            customer=Customer(channel_user_id="42", name="Ann", language="en"),
            content=TextContent(text=text),
            channel_message_id=str(order_key),
            channel_event_id=str(order_key),
            order_key=order_key,
            sent_at=kit.clock.now(),
            received_at=kit.clock.now(),
            extras=extras,
        )
    )


def unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events once each: a batch the portal took just before a restart may come again
    (at least once, docs/protocol.md)."""
    return list({event["id"]: event for event in events}.values())


def sent(api: TelegramApiStandIn) -> list[dict[str, Any]]:
    return [call.params for call in api.calls_to("sendMessage")]


async def test_consent_is_stored_with_the_contact_and_a_restart_keeps_the_bot_and_timers(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn, telegram_api: TelegramApiStandIn
) -> None:
    router = await host.router("p1")
    await router.set_operator("op-a", "online", True)
    await host.append([says(kit, 1, "hello")])
    await eventually(lambda: len(sent(telegram_api)) == 2, what="consent request and menu")
    consent, menu = sent(telegram_api)
    assert consent == {
        "chat_id": "42",
        "text": "May we process your data?",
        "parse_mode": "HTML",
        "reply_markup": {
            "inline_keyboard": [
                [
                    {"text": "Yes", "callback_data": "ol:consent:yes"},
                    {"text": "No", "callback_data": "ol:consent:no"},
                ]
            ]
        },
    }
    assert menu["text"] == "How can I help?"
    operator_button = menu["reply_markup"]["inline_keyboard"][0][0]["callback_data"]

    await host.append([says(kit, 2, "Yes", press="ol:consent:yes"), says(kit, 3, "hm")])
    await eventually(lambda: len(sent(telegram_api)) == 3, what="the fallback")
    assert sent(telegram_api)[2]["text"] == "Pardon?"
    (contact_id,) = {e["dialog"]["contact_id"] for e in portal.events}
    contact = await router.contacts.answer(GetContact(contact_id=contact_id))
    assert contact["consent"]["given"] is True
    assert contact["consent"]["at"] == kit.clock.now()

    # The engine stops with the bot one miss from handing over (every text settled, so none
    # is cut short: that would be reply.uncertain), and starts again.
    await portal.wait_for_events(3, "reply.sent")
    await kit.close_host(host)
    again = await kit.host(kit.config(portal, linger_ms=0, lines=[{"id": "support"}]))
    router = await again.router("p1")
    contact = await router.contacts.answer(GetContact(contact_id=contact_id))
    assert contact["consent"]["given"] is True  # durable, with the contact
    await again.append([says(kit, 4, "hmm?")])  # the second miss in a row: hand-over
    ref = dialog_ref(TG_CONNECTOR, "42")
    board = router.dispatcher.board
    await eventually(
        lambda: ref in board.open_by_ref and board.dialogs[board.open_by_ref[ref]].held is None,
        what="the hand-over",
    )
    dialog = board.dialogs[board.open_by_ref[ref]]
    assert (dialog.state, dialog.operator_id) == ("assigned", "op-a")
    assert dialog.voice is not None and '"phase":"left"' in (dialog.voice.bot or "")
    assert operator_button.startswith("ol:bot:m:0:")

    # An operator's reply starts the customer's silence; a restart does not lose its timer.
    await router.reply(
        dialog.dialog_id, ReplyBody(content=OutboundText(text="Hi!"), operator_id="op-a")
    )
    await portal.wait_for_events(1, "dialog.answered")
    await eventually(lambda: sent(telegram_api)[-1]["text"] == "Hi!", what="the reply")
    await eventually(
        lambda: [e["type"] for e in unique(portal.events)].count("reply.sent") == 4,
        what="the reply's outcome",
    )
    delivered = unique(portal.events)
    origins = [e["data"]["origin"] for e in delivered if e["type"] == "reply.sent"]
    assert origins == ["line", "bot", "bot", "operator"]
    assert [e["type"] for e in delivered if e["type"].startswith("dialog.")] == [
        "dialog.held",
        "dialog.consent",
        "dialog.handed_over",
        "dialog.queued",
        "dialog.assigned",
        "dialog.answered",
    ]
    await kit.close_host(again)
    third = await kit.host(kit.config(portal, linger_ms=0, lines=[{"id": "support"}]))
    router = await third.router("p1")
    reader = kit.reader()

    def recorded() -> list[tuple[str, Any]]:
        """The dialog's history after the operator's reply: the portal's clock is real time
        and refuses deliveries signed hours ahead, so what the engine recorded is read."""
        events = reader.history("p1", dialog.dialog_id, 100, None)
        kinds = [event.kind for event in events]
        after = len(kinds) - kinds[::-1].index("dialog.answered")
        return [(e.kind, orjson.loads(orjson.dumps(e.as_json()))) for e in events[after:]]

    before = len(sent(telegram_api))
    await kit.clock.advance(3599)
    assert len(sent(telegram_api)) == before
    await kit.clock.advance(1)
    await eventually(lambda: len(recorded()) == 2, what="the reminder sent")
    assert sent(telegram_api)[-1] == {
        "chat_id": "42",
        "text": "Still with us, Ann?",
        "parse_mode": "HTML",
    }
    await kit.clock.advance(3600)
    await eventually(lambda: len(recorded()) == 4, what="the auto-close")

    assert sent(telegram_api)[-1] == {"chat_id": "42", "text": "Closed.", "parse_mode": "HTML"}
    steps = [
        (kind, event["data"].get("origin") or event["data"].get("reason"))
        for kind, event in recorded()
    ]
    assert steps == [
        ("reply.sent", "operator"),
        ("reply.sent", "line"),
        ("dialog.closed", "auto_closed"),
        ("reply.sent", "line"),
    ]
    first = next(event for event in reader.history("p1", dialog.dialog_id, 100, None))
    assert first.kind == "dialog.held"
    consent_request = next(
        orjson.loads(e.reply_json)
        for e in reader.history("p1", dialog.dialog_id, 100, None)
        if e.kind == "reply.sent" and e.reply_json is not None
    )
    assert consent_request["keyboard"]["rows"][0][0] == {
        "label": "Yes",
        "payload": "ol:consent:yes",
    }
