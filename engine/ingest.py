"""How a customer's normalized message is stored: the record kept in the intake and inbox."""

from __future__ import annotations

from engine.models import InboundMessage
from engine.store.records import Conversation, OutboxRecord

EVENT_KINDS = {"new": "message.received", "edit": "message.edited", "delete": "message.deleted"}


def outbox_record(message: InboundMessage) -> OutboxRecord:
    """How a customer's message is stored: de-duplicated by its connector and channel id."""
    route = message.route
    return OutboxRecord(
        portal_id=route.portal_id,
        event_id=message.id,
        kind=EVENT_KINDS[message.action],
        conversation=Conversation(
            line_id=route.line_id,
            connector_id=route.connector_id,
            channel=route.channel,
            dialog_key=message.dialog_key,
            customer_id=message.customer.channel_user_id,
        ),
        order_key=message.order_key,
        received_at=message.received_at,
        payload=message.model_dump_json().encode(),
        dedup_key=f"{route.connector_id}\x00{message.channel_event_id}",
        best_effort=message.delivery == "best_effort",
    )
