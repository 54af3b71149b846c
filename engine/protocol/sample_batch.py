"""The batch a portal receives for a customer's first message, made by the engine's own code.

The test vectors' plaintext and the batch example of docs/protocol.md are this batch, so
neither is typed by hand (docs/protocol.md, "Test vectors"). The message is what the
Telegram channel makes of ``TELEGRAM_UPDATE`` (tests/engine/test_protocol_vectors.py parses
the update with the real channel to hold the two together); from there every step is the
engine's: ``engine.ingest`` stores it in a real ``SqliteOutbox`` (in a temporary folder),
the ``Dispatcher`` the portal actor runs opens the dialog, offers it to the one operator
online and stamps each event with the dialog as it stands there, the store commits the plan
and claims the batch (numbering its events), and ``batch_plaintext`` writes it.

Every run gives the same bytes: times are fixed, and where the engine draws an id at random
(dialogs, decisions, events of its own) a counter stands in, in the same shape.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.delivery.envelope import batch_plaintext
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.models import Customer, InboundMessage, Route, TextContent
from engine.routing.dispatcher import Dispatcher
from engine.routing.rules import LineRules, PortalRules
from engine.routing.state import Board
from engine.store.records import Batch
from engine.store.sqlite_outbox import SqliteOutbox

PORTAL_ID = "portal_example"
BATCH_ID = "bat_00000000000000000000000000000001"
ROUTE = Route(portal_id=PORTAL_ID, line_id="support", connector_id="tg-support", channel="telegram")
OPERATOR_ID = "op-anna"

OPERATOR_ONLINE_S = 1_799_999_000.0
RECEIVED_AT_S = 1_799_999_999.25
"""When the channel actor took the webhook."""
ROUTED_AT_S = 1_799_999_999.375
"""When the portal actor's router handled the message, after the hand-off."""
SENT_AT_S = 1_800_000_000.125
"""When the first attempt was sealed; its signature carries the whole second."""

TELEGRAM_UPDATE: dict[str, Any] = {
    "update_id": 905000017,
    "message": {
        "message_id": 17,
        "from": {
            "id": 421337,
            "is_bot": False,
            "first_name": "Анна",
            "last_name": "Петрова",
            "username": "anna_p",
            "language_code": "ru",
        },
        "chat": {"id": 421337, "first_name": "Анна", "type": "private"},
        "date": 1799999998,
        "text": "Здравствуйте! Где мой заказ? 📦",
    },
}
"""The customer's message as Telegram posts it (the Bot API's ``Update``)."""


def customer_message() -> InboundMessage:
    """``TELEGRAM_UPDATE`` normalized, as ``channels/telegram.py`` does it."""
    message = TELEGRAM_UPDATE["message"]
    sender = message["from"]
    return InboundMessage(
        id=inbound_event_id(ROUTE.connector_id, str(TELEGRAM_UPDATE["update_id"])),
        route=ROUTE,
        dialog_key=str(message["chat"]["id"]),
        customer=Customer(
            channel_user_id=str(sender["id"]),
            name=f"{sender['first_name']} {sender['last_name']}",
            username=sender["username"],
            profile_url=f"https://t.me/{sender['username']}",
            language=sender["language_code"],
        ),
        content=TextContent(text=message["text"]),
        channel_message_id=str(message["message_id"]),
        channel_event_id=str(TELEGRAM_UPDATE["update_id"]),
        order_key=TELEGRAM_UPDATE["update_id"],
        sent_at=float(message["date"]),
        received_at=RECEIVED_AT_S,
        extras={"chat_type": message["chat"]["type"]},
        raw=TELEGRAM_UPDATE,
    )


def _dispatcher() -> Dispatcher:
    """The portal's router logic: one line, one operator online, ids from a counter."""
    queue = {"members": [{"operator": OPERATOR_ID}]}
    rules = LineRules.model_validate({"portal": PORTAL_ID, "line": ROUTE.line_id, "queue": queue})
    counter = itertools.count(1)
    return Dispatcher(
        PORTAL_ID,
        Board(),
        PortalRules(1, {ROUTE.line_id: rules}),
        ids=lambda prefix: f"{prefix}_{next(counter):032x}",
    )


def _first_attempt(store: SqliteOutbox, batch_id: str) -> Batch:
    """The message stored, routed and claimed into a batch, as its first attempt goes out."""
    store.append([outbox_record(customer_message())], RECEIVED_AT_S)
    dispatcher = _dispatcher()
    dispatcher.set_operator(OPERATOR_ID, "online", True, OPERATOR_ONLINE_S)
    store.commit_plan(PORTAL_ID, dispatcher.take_plan(), [], [], OPERATOR_ONLINE_S, False)
    dispatcher.arrive(store.inbox(PORTAL_ID, 100), {}, {}, ROUTED_AT_S)
    store.commit_plan(PORTAL_ID, dispatcher.take_plan(), [], [], ROUTED_AT_S, False)
    pending = store.pending(PORTAL_ID, 0, 1, 100)
    batch = store.claim_batch(
        PORTAL_ID, batch_id, 0, [event.rowid for event in pending], {}, SENT_AT_S
    )
    # As delivery does: the attempt is counted (with the claim) before it is sealed.
    return replace(batch, attempts=batch.attempts + 1)


def sample_batch(batch_id: str = BATCH_ID) -> Batch:
    """The stored batch of the customer's first message, as its first attempt carries it."""
    with tempfile.TemporaryDirectory(prefix="openlines-sample-") as folder:
        store = SqliteOutbox(Path(folder) / "outbox.sqlite3", synchronous="OFF")
        try:
            return _first_attempt(store, batch_id)
        finally:
            store.close()


def sample_plaintext(portal_id: str = PORTAL_ID, batch_id: str = BATCH_ID) -> bytes:
    """What the portal reads after opening the sealed body of that first attempt.

    ``portal_id`` other than the sample's makes a batch naming another portal, for the
    vectors a portal must refuse."""
    return batch_plaintext(replace(sample_batch(batch_id), portal_id=portal_id), SENT_AT_S)
