"""The statistics' facts as Prometheus counters and histograms, counted as events commit.

The portal's router hands every routing step's committed entries here
(``PortalRouter._after_commit``); each becomes the same ``DialogEvent`` the history gives
the API, through the same ``Timeline``, so ``/metrics`` counts what the API reports.

Only the timelines of episodes seen from their start are kept: one per open dialog at most,
none once it closes. After a restart an open dialog's episode was not seen from its start:
the facts that need its past (answered, missed, answer times) are not counted for it, the
others are (docs/statistics.md, "Metrics"). Labels are the portal, the line and the fact's
kind and reason: bounded by the configuration, never a dialog, customer or operator id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from engine.metrics import ANSWER_BUCKETS_S, Counters, Sample, sample
from engine.models import Frozen
from engine.routing.plan import StreamEntry
from engine.stats.events import CUSTOMER_MESSAGE, STATS_KINDS, DialogEvent, with_reply_operator
from engine.stats.timeline import Fact, Timeline

log = logging.getLogger(__name__)

EVENTS_TOTAL = "openlines_dialog_events_total"
FIRST_ANSWER = "openlines_first_answer_seconds"
FURTHER_ANSWER = "openlines_answer_seconds"
_COUNTED = frozenset(STATS_KINDS)
_REASONLESS = frozenset({"assigned", "answered", "rated"})
"""Fact kinds counted without a reason label (``assigned``'s ``via`` is routing's)."""
_HISTOGRAMS = {"answered": FIRST_ANSWER, "replied": FURTHER_ANSWER}
_FLAT = frozenset(
    (
        "dialog.queued",
        "dialog.assigned",
        "dialog.answered",
        "dialog.returned",
        "dialog.transferred",
        "reply.sent",
    )
)
"""Kinds whose data models hold only plain values: their fields are read directly."""


class LiveStats:
    def __init__(self, portal_id: str, counters: Counters) -> None:
        self._portal_id = portal_id
        self._counters = counters
        self._timelines: dict[str, Timeline] = {}
        self._samples: dict[tuple[str, str, str], Sample] = {}
        """Counter keys by (kind, line, reason), made once: this runs for every event."""

    @property
    def open_timelines(self) -> int:
        return len(self._timelines)

    def record(self, entries: Sequence[StreamEntry]) -> None:
        """Count the facts of a committed step's entries, in stream order.

        Runs after the step committed, on the router's path: a failure here must not make
        a committed step look failed, so it is logged, counted and left behind (the API
        reads the history and stays exact)."""
        try:
            self._record(entries)
        except Exception:  # an observer's boundary: the step itself is done and durable
            log.exception("portal %s: counting statistics failed", self._portal_id)
            self._counters.inc("openlines_rejected_total", reason="stats_error")

    def _record(self, entries: Sequence[StreamEntry]) -> None:
        for entry in entries:
            if entry.kind not in _COUNTED or not entry.deliver:
                continue
            timeline = self._timelines.pop(entry.dialog_id, None) or Timeline()
            for fact in timeline.feed(_event(entry)):
                self._count(fact)
            if timeline.known:  # an episode not seen from its start holds nothing to keep
                self._timelines[entry.dialog_id] = timeline

    def _count(self, fact: Fact) -> None:
        if fact.kind != "replied":
            key = (fact.kind, fact.line_id, fact.detail)
            counted = self._samples.get(key)
            if counted is None:
                counted = self._samples[key] = self._events_sample(fact)
            self._counters.add(counted)
        if fact.value is None or fact.kind not in _HISTOGRAMS:
            return
        labels = {"portal": self._portal_id, "line": fact.line_id}
        self._counters.observe(_HISTOGRAMS[fact.kind], fact.value, ANSWER_BUCKETS_S, **labels)

    def _events_sample(self, fact: Fact) -> Sample:
        reason = {} if fact.kind in _REASONLESS else {"reason": fact.detail}
        labels = {"portal": self._portal_id, "line": fact.line_id, "type": fact.kind}
        return sample(EVENTS_TOTAL, **labels, **reason)


def _event(entry: StreamEntry) -> DialogEvent:
    """The entry as statistics read it; the stamp is parsed only where it is needed."""
    if entry.kind == CUSTOMER_MESSAGE:
        return DialogEvent(entry.dialog_id, entry.kind, entry.occurred_at, "", None, {})
    stamp = orjson.loads(entry.dialog_json)
    return DialogEvent(
        entry.dialog_id,
        entry.kind,
        entry.occurred_at,
        stamp["line_id"],
        stamp.get("operator_id"),
        with_reply_operator(_data(entry.kind, entry.data), entry.reply_json),
    )


def _data(kind: str, data: Frozen | None) -> dict[str, Any]:
    """The event's data as the history holds it. Flat models are read as they are (a
    JSON dump costs more than the rest of counting); the others are dumped."""
    if data is None:
        return {}
    return dict(vars(data)) if kind in _FLAT else data.model_dump(mode="json")
