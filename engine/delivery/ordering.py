"""Putting a batch in the order customers wrote in.

Channels may deliver a dialog's webhooks over parallel connections, so the store order can
differ from the channel's own order. Within a batch, each dialog's messages are sorted by
the channel's ``order_key`` and put back into the slots that dialog occupied; other dialogs
and engine events keep their places.

A slot keeps its dialog stamp (``dialog_json``): the owner stamped the dialog as it stood at
that point of the stream, and a message moved into the slot must show the dialog as it
stands there, so that no event names an operator the dialog did not have at its place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

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
            ordered[position] = replace(event, dialog_json=events[position].dialog_json)
    return ordered
