"""Median and p90 of answer times by the nearest-rank method.

Nearest rank reports a time that was actually observed (no interpolation between two
dialogs' times), which is what a manager can look up; docs/statistics.md defines it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """The smallest observed value with at least ``percent`` % of values at or below it;
    None without values. ``ordered`` is sorted ascending."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """``count``, ``median`` and ``p90`` of the values, in seconds."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median": nearest_rank(ordered, 50),
        "p90": nearest_rank(ordered, 90),
    }
