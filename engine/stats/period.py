"""The time range of a statistics query: its bounds as the API takes them, and its limit.

Bounds are Unix seconds or ISO 8601 dates and times; a date or a time without a zone is
UTC. A range is ``[from, to)``, at most ``MAX_RANGE_S`` long, so one query's work is
bounded (docs/statistics.md, "The API").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Literal

Bucket = Literal["hour", "day"]
BUCKET_S: dict[str, int] = {"hour": 3600, "day": 86400}
MAX_RANGE_DAYS = 92
MAX_RANGE_S = MAX_RANGE_DAYS * 86400
"""A quarter: long enough for a quarterly report, short enough to read in moments."""

_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_instant(text: str) -> float:
    """Unix seconds (``1772434800``, ``1772434800.5``), an ISO date (``2026-03-02``, its
    00:00 UTC) or an ISO date and time (``2026-03-02T10:00:00+03:00``, ``...Z``; UTC when
    it names no zone). ``ValueError`` says what was expected."""
    text = text.strip()
    if _NUMBER.match(text):
        seconds = float(text)
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a time")
        return seconds
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither Unix seconds nor an ISO 8601 date or date and time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_range(start: float, end: float) -> None:
    """``ValueError`` unless ``start < end`` and the range is at most ``MAX_RANGE_S``."""
    if end <= start:
        raise ValueError(f"to ({end}) must be after from ({start})")
    span = end - start
    if span > MAX_RANGE_S:
        shown = f"{span:.0f}" if span.is_integer() else f"{span:.3f}"
        raise ValueError(
            f"the range is {shown} s, longer than {MAX_RANGE_DAYS} days "
            f"({MAX_RANGE_S} s): ask for a shorter one"
        )


def bucket_start(at: float, bucket: Bucket) -> float:
    """The start of the UTC hour or day ``at`` falls in."""
    size = BUCKET_S[bucket]
    return float(math.floor(at / size) * size)
