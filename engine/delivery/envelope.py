"""The plaintext of a delivery: one JSON document per batch, sealed as a whole.

Event payloads are stored as JSON bytes and embedded without being parsed again
(``orjson.Fragment``): the hot path never re-encodes a message.
"""

from __future__ import annotations

import orjson

from engine.store.records import Batch


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
