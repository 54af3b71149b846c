"""The plaintext of a delivery: one JSON document per batch, sealed as a whole.

Event payloads are stored as JSON bytes and embedded without being parsed again
(``orjson.Fragment``): the hot path never re-encodes a message.
"""

from __future__ import annotations

import orjson

from engine.store.records import Batch

EVENT_TYPES = {
    "message.received": "A customer's new message.",
    "message.edited": "A customer edited an earlier message.",
    "message.deleted": "A customer deleted an earlier message.",
    "reply.sent": "An operator's reply reached the customer's channel.",
    "reply.failed": "An operator's reply could not be delivered; the reason says why.",
}


def batch_plaintext(batch: Batch, sent_at: float) -> bytes:
    return orjson.dumps(
        {
            "portal_id": batch.portal_id,
            "batch_id": batch.batch_id,
            "stream": batch.stream,
            "attempt": batch.attempts + 1,
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
