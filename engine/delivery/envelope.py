"""What a portal receives: the delivery request's headers and the batch in its sealed body.

``batch_plaintext`` writes the batch. Event payloads are stored as JSON bytes and embedded
without being parsed again (``orjson.Fragment``): the hot path never re-encodes a message,
so it cannot build the models below for every batch. The models describe the same shape
for the published schema (``engine.protocol.schema``, docs/protocol.md "Schema");
tests/engine/test_protocol_document.py holds batches the engine really delivers against
them, with every object closed, so a field added here or there and not in the other fails.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import ConfigDict, Field

from engine.events import DialogView
from engine.models import Frozen
from engine.store.records import Batch


class DeliveredEvent(Frozen):
    """One event of a batch. ``type`` names the model of ``data`` (``engine.events``)."""

    id: str = Field(description="The event's id, the same on every retry: de-duplicate on it.")
    seq: int | None = Field(
        ge=1,
        description="The portal's number of a guaranteed event: 1, 2, 3, ... without gaps,"
        " assigned when it first goes into a batch; null for a best-effort event.",
    )
    type: str = Field(description="The event type; it names the model of data.")
    best_effort: bool = Field(
        description="True: one attempt, at most once, may be dropped (and seq is null)."
    )
    occurred_at: float = Field(
        description="When the engine received a customer's event or made its own, Unix seconds;"
        " events come in stream order, which this need not follow."
    )
    dialog: DialogView = Field(description="The dialog as it stands at this point of its stream.")
    data: dict[str, Any] = Field(description="The event's own fields, by type.")


class DeliveredBatch(Frozen):
    """The plaintext of a sealed body: one JSON object per batch, events in delivery order."""

    portal_id: str = Field(description="The portal it was sealed for; equals your portal id.")
    batch_id: str = Field(description="Equals webhook-id; the same on every retry of the batch.")
    stream: int = Field(
        ge=0, description="0 on a sequential queue; 0..K-1 on a parallel one of K streams."
    )
    attempt: int = Field(
        ge=1, description="Which attempt this is, counted before it is sent; not an id."
    )
    sent_at: float = Field(description="When this attempt was sealed, Unix seconds.")
    events: tuple[DeliveredEvent, ...] = Field(description="The events in delivery order.")


class DeliveryHeaders(Frozen):
    """The headers of a delivery request, as ``engine.security.sealing.seal_and_sign`` sets
    them (names in lower case; HTTP names are case-insensitive)."""

    model_config = ConfigDict(populate_by_name=True)

    content_type: Literal["application/openlines-sealed+hpke"] = Field(
        alias="content-type", description="The body is a sealed batch."
    )
    portal_id: str = Field(
        alias="openlines-portal-id", description="The portal the batch is addressed to."
    )
    webhook_id: str = Field(
        alias="webhook-id", max_length=200, description="The batch id; the same on every retry."
    )
    webhook_timestamp: str = Field(
        alias="webhook-timestamp",
        pattern=r"^[0-9]+$",
        description="When this attempt was signed, integer Unix seconds.",
    )
    webhook_signature: str = Field(
        alias="webhook-signature",
        pattern=r"^v1a,[A-Za-z0-9+/]{86}==( v1a,[A-Za-z0-9+/]{86}==)*$",
        description="Space-separated v1a,<standard base64 of a 64-byte Ed25519 signature>.",
    )


def batch_plaintext(batch: Batch, sent_at: float) -> bytes:
    """The batch as attempt ``batch.attempts`` carries it (the attempt counted first)."""
    return orjson.dumps(
        {
            "portal_id": batch.portal_id,
            "batch_id": batch.batch_id,
            "stream": batch.stream,
            "attempt": batch.attempts,
            "sent_at": sent_at,
            "events": [
                {
                    "id": event.event_id,
                    "seq": event.seq,
                    "type": event.kind,
                    "best_effort": event.best_effort,
                    "occurred_at": event.received_at,
                    "dialog": orjson.Fragment(event.dialog_json),
                    "data": orjson.Fragment(event.payload),
                }
                for event in batch.events
            ],
        }
    )
