"""The figures of one selection (a time range, maybe one line, maybe one operator), folded
from the facts of every dialog that had an event in the range.

A fact counts when its time is in ``[from, to)`` and it is attributed to the selected line
and operator (``engine.stats.timeline``). Every figure is defined in docs/statistics.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

from engine.events import ClosedReason, ReturnedReason
from engine.stats.period import BUCKET_S, Bucket, bucket_start
from engine.stats.quantiles import summary
from engine.stats.timeline import Fact

LOAD_FIGURES = ("received", "assigned", "answered", "missed", "closed")
"""Counted per hour or day bucket in ``load``."""
TRANSFER_KINDS = ("to_line", "to_operator")


@dataclass(frozen=True, slots=True)
class Selection:
    """What a statistics query asks for: ``[start, end)``, and optionally one line and
    one operator; ``bucket`` is the width of the load series."""

    start: float
    end: float
    line_id: str | None = None
    operator_id: str | None = None
    bucket: Bucket = "day"

    def covers(self, fact: Fact) -> bool:
        return (
            self.start <= fact.at < self.end
            and (self.line_id is None or fact.line_id == self.line_id)
            and (self.operator_id is None or fact.operator_id == self.operator_id)
        )


class Figures:
    """Facts folded into figures, one dialog's facts at a time (bounded memory: counts,
    the answer times and the load buckets)."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._counts: Counter[tuple[str, str]] = Counter()
        self._answered_s: list[float] = []
        self._replied_s: list[float] = []
        self._scores: list[float] = []
        self._load: dict[float, Counter[str]] = {}

    def add(self, facts: Iterable[Fact]) -> None:
        for fact in facts:
            if not self.selection.covers(fact):
                continue
            self._counts[(fact.kind, fact.detail)] += 1
            if fact.kind == "answered" and fact.value is not None:
                self._answered_s.append(fact.value)
            elif fact.kind == "replied" and fact.value is not None:
                self._replied_s.append(fact.value)
            elif fact.kind == "rated" and fact.value is not None:
                self._scores.append(fact.value)
            if fact.kind in LOAD_FIGURES:
                start = bucket_start(fact.at, self.selection.bucket)
                self._load.setdefault(start, Counter())[fact.kind] += 1

    def count(self, kind: str, detail: str | None = None) -> int:
        """Facts of a kind counted, of one detail or of all."""
        return sum(n for (k, d), n in self._counts.items() if k == kind and detail in (None, d))

    def _by_detail(self, kind: str, known: Iterable[str]) -> dict[str, Any]:
        by = dict.fromkeys(known, 0)
        for (k, detail), n in self._counts.items():
            if k == kind:
                by[detail] = by.get(detail, 0) + n
        return {"total": sum(by.values()), "by_reason": by}

    def as_json(self) -> dict[str, Any]:
        selection = self.selection
        return {
            "from": selection.start,
            "to": selection.end,
            "line_id": selection.line_id,
            "operator_id": selection.operator_id,
            "bucket": selection.bucket,
            "dialogs": {
                "received": self.count("received"),
                "reopened": self.count("received", "reopened"),
                "assigned": self.count("assigned"),
                "answered": self.count("answered"),
                "missed": self._by_detail("missed", get_args(ClosedReason)),
                "transferred_out": {k: self.count("transferred_out", k) for k in TRANSFER_KINDS},
                "transferred_in": {k: self.count("transferred_in", k) for k in TRANSFER_KINDS},
                "returned": self._by_detail("returned", get_args(ReturnedReason)),
                "declined": {
                    "total": self.count("declined"),
                    "refused": self.count("declined", "refused"),
                    "spam": self.count("declined", "spam"),
                },
                "closed": self._by_detail("closed", get_args(ClosedReason)),
            },
            "first_answer_s": summary(self._answered_s),
            "further_answer_s": summary(self._replied_s),
            "ratings": self._ratings(),
            "load": self._load_series(),
        }

    def _ratings(self) -> dict[str, Any]:
        by_score = Counter(_score_key(score) for score in self._scores)
        average = sum(self._scores) / len(self._scores) if self._scores else None
        return {
            "count": self.count("rated"),
            "average": average,
            "by_score": dict(sorted(by_score.items(), key=lambda item: float(item[0]))),
        }

    def _load_series(self) -> list[dict[str, Any]]:
        """Every bucket of the range, empty ones too, so a chart needs no gaps filled."""
        size = BUCKET_S[self.selection.bucket]
        start = bucket_start(self.selection.start, self.selection.bucket)
        series = []
        while start < self.selection.end:
            counts = self._load.get(start, Counter())
            series.append({"start": start, **{k: counts[k] for k in LOAD_FIGURES}})
            start += size
        return series


def _score_key(score: float) -> str:
    return str(int(score)) if score.is_integer() else str(score)
