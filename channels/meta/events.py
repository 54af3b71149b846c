"""Meta's events that are not customer messages, as ``ChannelEvent`` (docs/channels/contract.md,
"Events that are not messages"): receipts of our messages, failures, reactions, opt-ins."""

from __future__ import annotations

from typing import Any

from engine.ids import inbound_event_id
from engine.models import ChannelEvent, ChannelEventKind, Route


def channel_event(
    route: Route,
    kind: ChannelEventKind,
    *,
    customer_id: str,
    event_id: str,
    occurred_at: float,
    received_at: float,
    raw: dict[str, Any],
    message_ids: tuple[str, ...] = (),
    watermark: float | None = None,
    reaction: str | None = None,
    reason: str | None = None,
    extras: dict[str, str] | None = None,
    dialog_key: str | None = None,
    opens_window: bool = False,
) -> ChannelEvent:
    """One event of the customer ``customer_id`` (whose dialog it joins unless ``dialog_key``
    says otherwise), keyed by ``event_id`` for de-duplication."""
    return ChannelEvent(
        id=inbound_event_id(route.connector_id, event_id),
        route=route,
        kind=kind,
        dialog_key=dialog_key or customer_id,
        customer_id=customer_id,
        channel_event_id=event_id,
        channel_message_ids=message_ids,
        watermark=watermark,
        reaction=reaction,
        reason=reason,
        occurred_at=occurred_at,
        received_at=received_at,
        opens_window=opens_window,
        extras=extras or {},
        raw=raw,
    )
