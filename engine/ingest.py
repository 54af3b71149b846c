"""How a customer's normalized message or a channel's other event is stored: the record kept
in the intake and inbox."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from engine.models import ChannelEvent, InboundMessage
from engine.placement import host_name
from engine.store.intake import Addressed
from engine.store.records import Conversation, OutboxRecord

EVENT_KINDS = {"new": "message.received", "edit": "message.edited", "delete": "message.deleted"}
CHANNEL_EVENT = "channel.event"
"""The stream kind of a ``ChannelEvent``: it joins the conversation's dialog, never opens one
(docs/channels/contract.md, "Events that are not messages")."""
BEST_EFFORT_CHANNEL_EVENTS = frozenset({"typing"})
"""Channel events a portal may miss: a typing notice is stale in seconds."""


def outbox_record(message: InboundMessage | ChannelEvent) -> OutboxRecord:
    """How a customer's message or a channel event is stored: de-duplicated by its connector
    and the channel's id."""
    route = message.route
    address = ""
    if isinstance(message, ChannelEvent):
        kind, customer_id, order_key = CHANNEL_EVENT, message.customer_id, 0
        best_effort = message.kind in BEST_EFFORT_CHANNEL_EVENTS
    else:
        kind, customer_id = EVENT_KINDS[message.action], message.customer.channel_user_id
        order_key, best_effort = message.order_key, message.delivery == "best_effort"
        if message.address:
            address = orjson.dumps(message.address, option=orjson.OPT_SORT_KEYS).decode()
    return OutboxRecord(
        portal_id=route.portal_id,
        event_id=message.id,
        kind=kind,
        conversation=Conversation(
            line_id=route.line_id,
            connector_id=route.connector_id,
            channel=route.channel,
            dialog_key=message.dialog_key,
            customer_id=customer_id,
            address=address,
        ),
        order_key=order_key,
        received_at=message.received_at,
        payload=message.model_dump_json().encode(),
        dedup_key=f"{route.connector_id}\x00{message.channel_event_id}",
        best_effort=best_effort,
    )


def addressed(records: Sequence[InboundMessage | ChannelEvent], pool_size: int) -> list[Addressed]:
    """Each record for the intake, addressed to the portal actor that serves its portal."""
    return [
        Addressed(host_name(record.route.portal_id, pool_size), outbox_record(record))
        for record in records
    ]
