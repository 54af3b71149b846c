"""Per-dialog addressing (docs/channels/contract.md, "Addressing"): what a reply needs travels
from the channel's message through the intake and the inbox to the dialog and the reply's
target; files and dialogs stored before the engine kept it still load and reply."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import orjson

from channels.meta.whatsapp import WhatsAppChannel, WhatsAppCredentials
from engine.delivery.replies import target_of
from engine.ingest import addressed, outbox_record
from engine.models import (
    Customer,
    DialogTarget,
    InboundMessage,
    OutboundText,
    ReplyRequest,
    Route,
    TextContent,
)
from engine.routing.plan import Plan
from engine.routing.state import DialogState
from engine.store.intake import IntakeStore
from engine.store.sqlite_outbox import SqliteOutbox
from tests.engine.routing_kit import T0, Kit, line_rules
from tests.standins.meta_api import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
)

ROUTE = Route(portal_id="p1", line_id="support", connector_id="wa", channel="whatsapp")
ADDRESS = {"phone_number_id": PHONE_NUMBER_ID, "to": "16505551234"}
OLD_INBOX = """
CREATE TABLE inbox (
    rowid INTEGER PRIMARY KEY,
    portal_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    dialog_ref TEXT NOT NULL, order_key INTEGER NOT NULL, best_effort INTEGER NOT NULL,
    received_at REAL NOT NULL, payload BLOB NOT NULL, line_id TEXT NOT NULL,
    connector_id TEXT NOT NULL, channel TEXT NOT NULL, dialog_key TEXT NOT NULL,
    customer_id TEXT NOT NULL);
"""
OLD_INTAKE = """
CREATE TABLE intake (
    rowid INTEGER PRIMARY KEY, destination TEXT NOT NULL,
    portal_id TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    line_id TEXT NOT NULL, connector_id TEXT NOT NULL, channel TEXT NOT NULL,
    dialog_key TEXT NOT NULL, customer_id TEXT NOT NULL, order_key INTEGER NOT NULL,
    received_at REAL NOT NULL, payload BLOB NOT NULL, dedup_key TEXT NOT NULL,
    best_effort INTEGER NOT NULL);
"""


def message(key: str = "16505551234", address: dict[str, str] | None = None) -> InboundMessage:
    return InboundMessage(
        id=f"in_{key}",
        route=ROUTE,
        dialog_key=key,
        customer=Customer(channel_user_id=key),
        content=TextContent(text="Где заказ?"),
        channel_message_id="wamid.A",
        channel_event_id="wamid.A",
        order_key=1,
        sent_at=T0,
        received_at=T0,
        address=ADDRESS if address is None else address,
    )


def test_the_address_is_kept_by_the_intake_and_the_inbox(tmp_path: Path) -> None:
    record = outbox_record(message())
    assert orjson.loads(record.conversation.address) == ADDRESS
    assert b"phone_number_id" not in record.payload  # the portal is not sent it

    intake = IntakeStore(tmp_path / "intake.db")
    [kept] = intake.append(addressed([message()], 1), T0)
    assert kept is not None
    [row] = intake.pending_by_destination([kept.destination], None)[kept.destination]
    assert row.record == record

    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.append([row.record], T0)
    [inbox] = outbox.inbox("p1", 10)
    assert orjson.loads(inbox.conversation.address) == ADDRESS


def test_files_written_before_addresses_get_the_column_and_load_their_rows(
    tmp_path: Path,
) -> None:
    record = outbox_record(message(address={}))
    old = sqlite3.connect(tmp_path / "outbox.db")
    old.executescript(OLD_INBOX)
    conversation = record.conversation
    old.execute(
        "INSERT INTO inbox VALUES (1, 'p1', 'in_1', 'message.received', ?, 1, 0, ?, ?,"
        " 'support', 'wa', 'whatsapp', ?, ?)",
        (record.dialog_ref, T0, record.payload, conversation.dialog_key, conversation.customer_id),
    )
    old.commit()
    old.close()
    [row] = SqliteOutbox(tmp_path / "outbox.db").inbox("p1", 10)
    assert row.conversation.address == "" and row.conversation.dialog_key == "16505551234"

    old = sqlite3.connect(tmp_path / "intake.db")
    old.executescript(OLD_INTAKE)
    old.commit()
    old.close()
    intake = IntakeStore(tmp_path / "intake.db")
    [kept] = intake.append(addressed([message()], 1), T0)
    assert kept is not None and orjson.loads(kept.record.conversation.address) == ADDRESS


def test_the_dialog_keeps_the_latest_new_messages_address() -> None:
    kit = Kit(line_rules())
    kit.online("a")
    opened = kit.write("42", address='{"comment_id":"c1","thread_id":"c1"}')
    assert opened is not None and opened.address == {"comment_id": "c1", "thread_id": "c1"}
    later = kit.write("42", address='{"comment_id":"c2","thread_id":"c1"}')
    assert later is not None and later.address == {"comment_id": "c2", "thread_id": "c1"}
    edited = kit.write("42", kind="message.edited", address='{"comment_id":"c9"}')
    assert edited is not None and edited.address["comment_id"] == "c2"  # an edit: not new
    plain = kit.write("42")  # a message without one leaves what the dialog had
    assert plain is not None and plain.address["comment_id"] == "c2"
    assert target_of(plain, "p1").address == {"comment_id": "c2", "thread_id": "c1"}


def test_a_dialog_stored_before_addresses_loads_with_none(tmp_path: Path) -> None:
    dialog = DialogState(
        dialog_id="dlg_old",
        line_id="support",
        connector_id="wa",
        channel="whatsapp",
        dialog_key="16505551234",
        customer_id="16505551234",
        opened_at=T0,
        address={"to": "x"},
    )
    old_json = orjson.loads(dialog.to_json())
    del old_json["address"]
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    plan = Plan(dialogs={"dlg_old": DialogState.from_json(orjson.dumps(old_json))})
    outbox.commit_plan("p1", plan, [], [], T0, durable=True)
    loaded = outbox.dialog("p1", "dlg_old")
    assert loaded is not None and loaded.address == {}
    assert target_of(loaded, "p1").address == {}


async def test_an_old_dialog_and_an_old_stored_reply_still_reply(
    graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    credentials = WhatsAppCredentials(
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        access_token=WA_TOKEN,
        graph_api_url=graph.graph_api_url,
    )
    channel = WhatsAppChannel(ROUTE, credentials)
    old_target = orjson.loads(
        target_of(
            DialogState("d1", "support", "wa", "whatsapp", "16505551234", "c", T0), "p1"
        ).model_dump_json()
    )
    del old_target["address"]  # a reply stored before addresses were kept
    target = DialogTarget.model_validate(old_target)
    request = ReplyRequest(content=OutboundText(text="Едет"))
    await channel.send(session, target, request, reply_id="r1")
    addressed_target = target.model_copy(
        update={"address": {"phone_number_id": "106540352299999", "recipient": "US.77"}}
    )
    graph.accounts.whatsapp["106540352299999"] = WA_TOKEN
    await channel.send(session, addressed_target, request, reply_id="r2")
    old_call, new_call = graph.calls
    assert (old_call.node, old_call.body["to"]) == (PHONE_NUMBER_ID, "16505551234")
    assert (new_call.node, new_call.body["recipient"]) == ("106540352299999", "US.77")
    assert "to" not in new_call.body
