"""Committed stream entries into counters and histograms, as the router hands them over
(docs/statistics.md, "Metrics")."""

from __future__ import annotations

from dataclasses import replace

import orjson

from engine.events import (
    DialogAnswered,
    DialogAssigned,
    DialogClosed,
    DialogQueued,
    ReplySent,
    event_type,
)
from engine.metrics import Counters
from engine.models import Frozen
from engine.routing.plan import StreamEntry
from engine.routing.state import DialogState
from engine.stats.live import LiveStats

T0 = 1_772_409_600.0


def dialog(dialog_id: str = "d1", **changes: object) -> DialogState:
    state = DialogState(dialog_id, "support", "tg", "telegram", "42", "42", opened_at=T0)
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def entry(
    at: float,
    data: Frozen | None,
    stamp: DialogState,
    kind: str = "",
    reply_operator: str | None = None,
    deliver: bool = True,
) -> StreamEntry:
    reply_json = None
    if isinstance(data, ReplySent):
        reply_json = orjson.dumps({"operator_id": reply_operator})
    return StreamEntry(
        event_id=f"evt_{at}",
        kind=kind or event_type(data) if data is not None else kind,
        dialog_id=stamp.dialog_id,
        dialog_ref=stamp.ref,
        dialog_json=stamp.view_json(),
        occurred_at=at,
        data=data,
        deliver=deliver,
        reply_json=reply_json,
    )


def sent() -> ReplySent:
    return ReplySent(reply_id="r", client_id=None, origin="operator", channel_message_ids=())


def counted(counters: Counters, kind: str, **labels: str) -> float:
    return counters.value(
        "openlines_dialog_events_total", portal="p1", line="support", type=kind, **labels
    )


def test_a_dialogs_facts_become_counters_and_answer_time_histograms() -> None:
    counters = Counters()
    live = LiveStats("p1", counters)
    held = dialog(state="assigned", operator_id="anna")
    live.record(
        [
            entry(T0, DialogQueued(reason="new", position=1), dialog()),
            entry(T0, DialogAssigned(operator_id="anna", via="direct", decision_id="x"), held),
            entry(T0 - 1, None, held, kind="message.received"),
        ]
    )
    assert live.open_timelines == 1
    live.record([entry(T0 + 42, DialogAnswered(operator_id="anna"), held)])
    live.record([entry(T0 + 43, sent(), held, reply_operator="anna")])
    live.record([entry(T0 + 50, None, held, kind="message.received")])
    live.record([entry(T0 + 50, None, held, kind="message.received", deliver=False)])
    live.record([entry(T0 + 70, sent(), held)])
    live.record([entry(T0 + 80, DialogClosed(reason="finished", operator_id="anna"), held)])

    assert counted(counters, "received", reason="new") == 1
    assert counted(counters, "assigned") == 1
    assert counted(counters, "answered") == 1
    assert counted(counters, "closed", reason="finished") == 1
    assert counted(counters, "missed", reason="finished") == 0
    labels = {"portal": "p1", "line": "support"}
    first = "openlines_first_answer_seconds"
    assert counters.value(f"{first}_bucket", le="30.0", **labels) == 0
    assert counters.value(f"{first}_bucket", le="60.0", **labels) == 1
    assert counters.value(f"{first}_sum", **labels) == 42
    assert counters.value("openlines_answer_seconds_sum", **labels) == 20
    assert counters.value("openlines_answer_seconds_count", **labels) == 1
    assert live.open_timelines == 0  # closed: nothing kept


def test_after_a_restart_an_open_dialog_counts_only_what_needs_no_past() -> None:
    counters = Counters()
    live = LiveStats("p1", counters)  # a restarted router: its dialogs' starts unseen
    held = dialog(state="assigned", operator_id="anna")
    live.record(
        [
            entry(T0 + 5, DialogAnswered(operator_id="anna"), held),
            entry(T0 + 9, DialogClosed(reason="declined", operator_id="anna"), held),
        ]
    )
    assert counted(counters, "answered") == 0
    assert counted(counters, "closed", reason="declined") == 1
    assert counted(counters, "declined", reason="refused") == 1
    assert counted(counters, "missed", reason="declined") == 0
    assert counters.value("openlines_first_answer_seconds_count", portal="p1", line="support") == 0
    assert live.open_timelines == 0


def test_a_failure_to_count_never_fails_the_committed_step() -> None:
    counters = Counters()
    live = LiveStats("p1", counters)
    broken = entry(T0, DialogQueued(reason="new", position=1), dialog())
    garbled = replace(broken, dialog_json=b"{not json")

    live.record([garbled])  # logged and counted, not raised

    assert counters.value("openlines_rejected_total", reason="stats_error") == 1
    live.record([entry(T0, DialogQueued(reason="new", position=1), dialog("d2"))])
    assert counted(counters, "received", reason="new") == 1
