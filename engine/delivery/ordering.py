"""Putting a batch in the order customers wrote in.

Channels may deliver a dialog's webhooks over parallel connections, so the store order can
differ from the channel's own order. Within a batch, each dialog's messages are sorted by
the channel's ``order_key`` and put back into the slots that dialog occupied; other dialogs
and engine events keep their places.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from engine.store.records import PendingEvent

REORDERED_KINDS = frozenset({"message.received", "message.edited", "message.deleted"})


def in_channel_order(events: Sequence[PendingEvent]) -> list[PendingEvent]:
    slots: dict[str, list[int]] = defaultdict(list)
    for position, event in enumerate(events):
        if event.kind in REORDERED_KINDS:
            slots[event.dialog_ref].append(position)
    ordered = list(events)
    for positions in slots.values():
        if len(positions) < 2:
            continue
        sorted_events = sorted((events[p] for p in positions), key=lambda e: e.order_key)
        for position, event in zip(positions, sorted_events, strict=True):
            ordered[position] = event
    return ordered
