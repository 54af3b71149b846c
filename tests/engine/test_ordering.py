"""Putting a batch in the order customers wrote in (``engine.delivery.ordering``)."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.delivery.ordering import REORDERED_KINDS, in_channel_order
from engine.store.records import PendingEvent


def event(rowid: int, dialog: str, order_key: int, kind: str = "message.received") -> PendingEvent:
    return PendingEvent(
        rowid=rowid,
        event_id=f"evt_{rowid}",
        kind=kind,
        dialog_ref=dialog,
        order_key=order_key,
        received_at=0.0,
        best_effort=False,
        dialog_json=stamp(rowid),
    )


def stamp(rowid: int) -> bytes:
    """The dialog as its owner stamped it at this event's place in the stream."""
    return b'{"stamped_at_row":%d}' % rowid


def test_each_dialog_is_sorted_into_its_own_slots() -> None:
    events = [
        event(1, "a", 30),
        event(2, "b", 7),
        event(3, "a", 10),
        event(4, "b", 5),
        event(5, "a", 20),
        event(6, "c", 1),
    ]
    ordered = in_channel_order(events)
    assert [(e.dialog_ref, e.order_key) for e in ordered] == [
        ("a", 10),
        ("b", 5),
        ("a", 20),
        ("b", 7),
        ("a", 30),
        ("c", 1),
    ]


def test_engine_events_keep_their_places() -> None:
    events = [
        event(1, "a", 2),
        event(2, "a", 0, kind="reply.sent"),
        event(3, "a", 1),
    ]
    ordered = in_channel_order(events)
    assert [e.rowid for e in ordered] == [3, 2, 1]


def test_a_moved_message_takes_the_stamp_of_the_slot_it_moves_into() -> None:
    events = [
        event(1, "a", 2),
        event(2, "a", 0, kind="dialog.assigned"),
        event(3, "a", 1),
    ]
    ordered = in_channel_order(events)
    assert [(e.rowid, e.dialog_json) for e in ordered] == [
        (3, stamp(1)),  # the earlier message shows the dialog before its assignment
        (2, stamp(2)),
        (1, stamp(3)),
    ]


def test_equal_order_keys_keep_store_order() -> None:
    events = [event(1, "a", 5), event(2, "a", 5), event(3, "a", 4)]
    assert [e.rowid for e in in_channel_order(events)] == [3, 1, 2]


def test_input_is_not_modified() -> None:
    events = [event(1, "a", 2), event(2, "a", 1)]
    in_channel_order(events)
    assert [e.rowid for e in events] == [1, 2]


KINDS = [*sorted(REORDERED_KINDS), "reply.sent", "reply.failed"]

interleavings = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=0, max_value=50),
        st.sampled_from(KINDS),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(interleavings)
def test_any_interleaving_is_sorted_per_dialog_in_the_same_slots(
    drawn: list[tuple[str, int, str]],
) -> None:
    events = [event(n, dialog, key, kind) for n, (dialog, key, kind) in enumerate(drawn)]
    ordered = in_channel_order(events)

    assert Counter(e.rowid for e in ordered) == Counter(e.rowid for e in events)

    def slots(sequence: list[PendingEvent]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = defaultdict(list)
        for position, item in enumerate(sequence):
            if item.kind in REORDERED_KINDS:
                found[item.dialog_ref].append(position)
        return found

    assert slots(ordered) == slots(events)
    for dialog, positions in slots(ordered).items():
        keys = [ordered[p].order_key for p in positions]
        assert keys == sorted(keys), dialog
        assert Counter(keys) == Counter(events[p].order_key for p in positions)
    for position, original in enumerate(events):
        assert ordered[position].dialog_json == original.dialog_json  # stamps stay in place
        if original.kind not in REORDERED_KINDS:
            assert ordered[position] is original
