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
from typing import Protocol, TypeVar

from engine.store.records import PendingEvent

REORDERED_KINDS = frozenset({"message.received", "message.edited", "message.deleted"})


class Ordered(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def dialog_ref(self) -> str: ...

    @property
    def order_key(self) -> int: ...


OrderedT = TypeVar("OrderedT", bound=Ordered)


def sorted_into_slots(items: Sequence[OrderedT]) -> list[OrderedT]:
    """Each dialog's customer events sorted by the channel's order, in that dialog's slots."""
    slots: dict[str, list[int]] = defaultdict(list)
    for position, item in enumerate(items):
        if item.kind in REORDERED_KINDS:
            slots[item.dialog_ref].append(position)
    ordered = list(items)
    for positions in slots.values():
        if len(positions) < 2:
            continue
        in_order = sorted((items[p] for p in positions), key=lambda item: item.order_key)
        for position, item in zip(positions, in_order, strict=True):
            ordered[position] = item
    return ordered


def in_channel_order(events: Sequence[PendingEvent]) -> list[PendingEvent]:
    """``sorted_into_slots``, each slot keeping its dialog stamp."""
    ordered = sorted_into_slots(events)
    return [
        event if event is original else replace(event, dialog_json=original.dialog_json)
        for event, original in zip(ordered, events, strict=True)
    ]
