"""Working hours of open lines and operators: when they take dialogs, and when they next will.

The model is the one people write on a door. A schedule lives in one IANA zone and lists,
per weekday, wall-clock ranges ``"HH:MM-HH:MM"`` in that zone:

* Several ranges on one day are split shifts (``["09:00-13:00", "14:00-18:00"]``).
* A range whose end is at or before its start runs past midnight: ``"22:00-02:00"`` on
  ``fri`` is open from Friday 22:00 to Saturday 02:00. ``"00:00-24:00"`` is the whole day.
  Ranges that overlap or touch, also across midnight, form one open period.
* A weekday missing from the table is closed; ``always_open`` replaces the table with
  ``"00:00-24:00"`` on every day.
* A holiday (a listed date, or a public holiday of ``country_holidays``) closes the ranges
  that *start* on its date. A Friday-night shift that runs into a holiday Saturday still runs
  to its end: the people on it started their shift on a working day.
* An exceptional working day replaces, on its date, both the weekly table (or
  ``always_open``) and any holiday with its own ranges: a Saturday made a working day, or a
  short day before a holiday.

Daylight-saving time. Ranges are wall-clock times, so an instant is mapped through the zone's
rules of that very date:

* A time that does not exist (spring forward) means the first instant that exists after it,
  the moment of the switch. On Europe/Berlin's 2026-03-29, ``02:30-04:00`` opens at 03:00
  CEST, ``01:00-03:00`` lasts one real hour and ``02:00-03:00`` is empty and skipped.
* A time that occurs twice (fall back) means its first occurrence when it starts a range and
  its last occurrence when it ends one, so a range covers every instant whose wall clock is
  in it: on Berlin's 2026-10-25, ``01:00-03:00`` lasts three real hours.

Everything is in unix seconds (``float``) because the engine's clock is ``clock.now()``. The
router asks ``is_open`` for every candidate operator on every decision, so a ``Schedule``
memoizes the merged open periods of each UTC day it is asked about and answers with a bisect;
computing a day goes through ``zoneinfo`` only once. The memo is bounded and belongs to the
schedule: compile a ``HoursConfig`` once per rules snapshot and keep the ``Schedule``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from pydantic import Field, field_validator, model_validator

from engine.config import ConfigModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

HORIZON_DAYS = 400
"""How far ``next_opening`` and ``next_closing`` look before answering None."""

DAY_S = 86_400
MINUTES_PER_DAY = 1_440
CACHE_DAYS = 2_048
"""Memo entries per schedule; a 400-day search fits, and the memo is dropped when full."""

RANGE_EXPECTED = (
    "expected 'HH:MM-HH:MM' with HH 00-23 (24:00 only as an end) and MM 00-59, "
    "e.g. '09:00-18:00', '22:00-02:00' or '00:00-24:00'"
)
_RANGE_PATTERN = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

WeeklyTable = dict[Weekday, tuple[str, ...]]
DatedTable = dict[date, tuple[str, ...]]
Period = tuple[float, float]
"""An open period ``[start_s, end_s)`` in unix seconds."""


@dataclass(frozen=True, slots=True)
class WallRange:
    """Wall-clock minutes from local midnight of the day the range starts on.

    ``end_min`` exceeds 1440 when the range runs past midnight into the next day.
    """

    start_min: int
    end_min: int


WHOLE_DAY = (WallRange(0, MINUTES_PER_DAY),)


def parse_range(text: str) -> WallRange:
    """Parse ``"HH:MM-HH:MM"``; the ValueError says what is wrong, the caller says where."""
    match = _RANGE_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time range; {RANGE_EXPECTED}")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if start_h > 23:
        raise ValueError(f"{text!r} starts at hour {start_h:02d}; {RANGE_EXPECTED}")
    if end_h > 24 or (end_h == 24 and end_m != 0):
        raise ValueError(f"{text!r} ends at {end_h:02d}:{end_m:02d}; {RANGE_EXPECTED}")
    if start_m > 59 or end_m > 59:
        raise ValueError(f"{text!r} has a minute above 59; {RANGE_EXPECTED}")
    start_min, end_min = start_h * 60 + start_m, end_h * 60 + end_m
    if start_min == end_min:
        raise ValueError(
            f"{text!r} starts and ends at the same time; for a whole day write '00:00-24:00'"
        )
    if end_min < start_min:
        end_min += MINUTES_PER_DAY
    return WallRange(start_min, end_min)


def _parse_ranges(where: str, texts: Iterable[str]) -> tuple[WallRange, ...]:
    try:
        return tuple(parse_range(text) for text in texts)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


class HoursConfig(ConfigModel):
    """Working hours as written in YAML; ``compile()`` makes the ``Schedule`` that answers."""

    timezone: str = Field(
        default="UTC", description="IANA zone the ranges are wall-clock times in."
    )
    weekly: WeeklyTable = Field(
        default_factory=dict,
        description="Per weekday, ranges 'HH:MM-HH:MM'; a missing weekday is closed.",
    )
    always_open: bool = Field(default=False, description="Open 24/7 instead of the weekly table.")
    holidays: tuple[date, ...] = Field(
        default=(), description="Dates whose ranges are closed, in the schedule's zone."
    )
    country_holidays: str | None = Field(
        default=None,
        description="Country code (ISO 3166-1 alpha-2) whose public holidays are closed.",
    )
    country_subdivision: str | None = Field(
        default=None, description="Subdivision of country_holidays, e.g. 'BY' for Bavaria."
    )
    working_days: DatedTable = Field(
        default_factory=dict,
        description="Dates whose ranges replace the weekly table and any holiday.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"{value!r} is not a known time zone; expected an IANA name such as "
                "'Europe/Moscow' or 'UTC'"
            ) from None
        return value

    @field_validator("weekly")
    @classmethod
    def _weekly_ranges(cls, value: WeeklyTable) -> WeeklyTable:
        for day, texts in value.items():
            _parse_ranges(f"weekly.{day}", texts)
        return value

    @field_validator("working_days")
    @classmethod
    def _working_day_ranges(cls, value: DatedTable) -> DatedTable:
        for day, texts in value.items():
            if not texts:
                raise ValueError(
                    f"working_days.{day.isoformat()}: no ranges; list at least one, "
                    "or put the date in holidays to close it"
                )
            _parse_ranges(f"working_days.{day.isoformat()}", texts)
        return value

    @field_validator("country_holidays")
    @classmethod
    def _country_upper(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()

    @model_validator(mode="after")
    def _country_known(self) -> HoursConfig:
        """Checked at load: an unknown code would otherwise fail the first routing decision."""
        country, subdivision = self.country_holidays, self.country_subdivision
        if country is None:
            if subdivision is not None:
                raise ValueError(
                    f"country_subdivision {subdivision!r} needs country_holidays to be set"
                )
            return self
        supported = holidays_lib.list_supported_countries()
        if country not in supported:
            raise ValueError(
                f"country_holidays: {country!r} is not a country the holidays library knows; "
                "expected an ISO 3166-1 alpha-2 code such as 'RU', 'DE' or 'US'"
            )
        if subdivision is not None and subdivision not in supported[country]:
            known = ", ".join(supported[country]) or "none"
            raise ValueError(
                f"country_subdivision: {subdivision!r} is not a subdivision of {country}; "
                f"expected one of: {known}"
            )
        return self

    def compile(self) -> Schedule:
        """The schedule that answers; compile once and keep it, it holds the memo."""
        return Schedule.from_config(self)


class HolidayCalendar:
    """Closed dates: the listed ones plus a country's public holidays, resolved per year.

    The holidays library computes a year at a time (Easter, substitutions, decrees), so each
    year is asked for once and kept as a frozen set.
    """

    __slots__ = ("_country", "_dates", "_subdivision", "_years")

    def __init__(self, dates: Iterable[date], country: str | None, subdivision: str | None) -> None:
        self._dates = frozenset(dates)
        self._country = country
        self._subdivision = subdivision
        self._years: dict[int, frozenset[date]] = {}

    def closes(self, day: date) -> bool:
        if day in self._dates:
            return True
        if self._country is None:
            return False
        year = self._years.get(day.year)
        if year is None:
            year = self._resolve_year(self._country, day.year)
        return day in year

    def _resolve_year(self, country: str, year: int) -> frozenset[date]:
        found = holidays_lib.country_holidays(country, subdiv=self._subdivision, years=year)
        resolved = frozenset(found.keys())
        self._years[year] = resolved
        return resolved


class Schedule:
    """Compiled working hours: ``is_open`` and the next opening or closing, in unix seconds.

    Immutable from the outside; inside it memoizes, per local date, the periods its ranges
    give and, per UTC day, the merged periods overlapping that day as two sorted tuples
    (starts, ends) for a bisect. Safe to share between coroutines: a race on the memo only
    computes a day twice.
    """

    __slots__ = (
        "_always_open",
        "_holidays",
        "_local_days",
        "_utc_days",
        "_weekly",
        "_working_days",
        "_zone",
    )

    def __init__(
        self,
        *,
        zone: ZoneInfo,
        weekly: Mapping[int, tuple[WallRange, ...]],
        always_open: bool = False,
        holidays: HolidayCalendar | None = None,
        working_days: Mapping[date, tuple[WallRange, ...]] | None = None,
    ) -> None:
        self._zone = zone
        self._weekly = tuple(weekly.get(index, ()) for index in range(7))
        self._always_open = always_open
        self._holidays = holidays or HolidayCalendar((), None, None)
        self._working_days = dict(working_days or {})
        self._local_days: dict[date, tuple[Period, ...]] = {}
        self._utc_days: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {}

    @classmethod
    def from_config(cls, config: HoursConfig) -> Schedule:
        weekly = {
            WEEKDAYS.index(day): _parse_ranges(f"weekly.{day}", texts)
            for day, texts in config.weekly.items()
        }
        working_days = {
            day: _parse_ranges(f"working_days.{day.isoformat()}", texts)
            for day, texts in config.working_days.items()
        }
        calendar = HolidayCalendar(
            config.holidays, config.country_holidays, config.country_subdivision
        )
        return cls(
            zone=ZoneInfo(config.timezone),
            weekly=weekly,
            always_open=config.always_open,
            holidays=calendar,
            working_days=working_days,
        )

    @property
    def zone_name(self) -> str:
        return self._zone.key

    def is_open(self, at_s: float) -> bool:
        """The hot path: one dict lookup and one bisect on a warm memo."""
        starts, ends = self._utc_day(int(at_s // DAY_S))
        index = bisect_right(starts, at_s) - 1
        return index >= 0 and at_s < ends[index]

    def next_opening(self, at_s: float) -> float | None:
        """``at_s`` when open, else when the schedule next opens; None beyond 400 days."""
        if self.is_open(at_s):
            return at_s
        horizon_s = at_s + HORIZON_DAYS * DAY_S
        first_day = int(at_s // DAY_S)
        for day in range(first_day, first_day + HORIZON_DAYS + 2):
            starts, ends = self._utc_day(day)
            index = bisect_right(ends, at_s)
            if index < len(starts):
                return starts[index] if starts[index] <= horizon_s else None
        return None

    def next_closing(self, at_s: float) -> float | None:
        """When the open period around ``at_s`` ends; None when closed or open 400 days on.

        Periods that touch (a shift to 24:00 and one from 00:00) are one period, so the
        walk continues while the end of one period is open.
        """
        horizon_s = at_s + HORIZON_DAYS * DAY_S
        end_s = self._period_end(at_s)
        if end_s is None:
            return None
        while end_s <= horizon_s:
            following_s = self._period_end(end_s)
            if following_s is None:
                return end_s
            end_s = following_s
        return None

    def describe_opening(self, at_s: float) -> str | None:
        """The next opening for people, in the zone: ``"Mon 2026-03-30 09:00 (Europe/Berlin)"``.

        English weekday abbreviations whatever the process locale; minutes, not seconds (when
        open now, the current minute). None when it never opens within 400 days.
        """
        opening_s = self.next_opening(at_s)
        if opening_s is None:
            return None
        local = datetime.fromtimestamp(opening_s, self._zone)
        weekday = _WEEKDAY_NAMES[local.weekday()]
        return f"{weekday} {local:%Y-%m-%d %H:%M} ({self._zone.key})"

    def _period_end(self, at_s: float) -> float | None:
        starts, ends = self._utc_day(int(at_s // DAY_S))
        index = bisect_right(starts, at_s) - 1
        if index >= 0 and at_s < ends[index]:
            return ends[index]
        return None

    def _utc_day(self, day: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        cached = self._utc_days.get(day)
        if cached is not None:
            return cached
        built = self._build_utc_day(day)
        if len(self._utc_days) >= CACHE_DAYS:
            self._utc_days.clear()
        self._utc_days[day] = built
        return built

    def _build_utc_day(self, day: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Merged periods overlapping UTC day ``day``.

        A range starting on local date X covers wall-clock times on X and X+1 only, so the
        local dates from the day before the window's first to the window's last suffice.
        """
        window_start_s = float(day * DAY_S)
        window_end_s = window_start_s + DAY_S
        first = datetime.fromtimestamp(window_start_s, self._zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(window_end_s, self._zone).date()
        periods: list[Period] = []
        while first <= last:
            periods.extend(self._local_day(first))
            first += timedelta(days=1)
        kept = [
            (start_s, end_s)
            for start_s, end_s in merge_periods(periods)
            if end_s > window_start_s and start_s < window_end_s
        ]
        return tuple(start for start, _ in kept), tuple(end for _, end in kept)

    def _local_day(self, day: date) -> tuple[Period, ...]:
        cached = self._local_days.get(day)
        if cached is not None:
            return cached
        periods: list[Period] = []
        for wall in self._ranges_on(day):
            start_s = wall_instant(day, wall.start_min, self._zone, fold=0)
            end_s = wall_instant(day, wall.end_min, self._zone, fold=1)
            if start_s < end_s:  # a range inside a spring-forward gap is empty
                periods.append((start_s, end_s))
        if len(self._local_days) >= CACHE_DAYS:
            self._local_days.clear()
        self._local_days[day] = tuple(periods)
        return self._local_days[day]

    def _ranges_on(self, day: date) -> tuple[WallRange, ...]:
        """The ranges that start on ``day``: exception, then holiday, then the usual week."""
        exceptional = self._working_days.get(day)
        if exceptional is not None:
            return exceptional
        if self._holidays.closes(day):
            return ()
        if self._always_open:
            return WHOLE_DAY
        return self._weekly[day.weekday()]


def merge_periods(periods: Iterable[Period]) -> list[Period]:
    """Sorted, with overlapping and touching periods joined into one."""
    merged: list[Period] = []
    for start_s, end_s in sorted(periods):
        if merged and start_s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end_s))
        else:
            merged.append((start_s, end_s))
    return merged


def wall_instant(day: date, minute: int, zone: ZoneInfo, *, fold: int) -> float:
    """Unix seconds of wall-clock ``minute`` after local midnight of ``day`` (may pass 1440).

    ``fold`` picks the occurrence of an ambiguous time: 0 the first, 1 the last. A time in a
    spring-forward gap becomes the first instant that exists after it, the switch itself.
    """
    local_day = day + timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    wall = datetime(
        local_day.year,
        local_day.month,
        local_day.day,
        minute // 60,
        minute % 60,
        tzinfo=zone,
        fold=fold,
    )
    instant_s = wall.timestamp()
    if datetime.fromtimestamp(instant_s, zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant_s
    return _gap_end(wall)


def _gap_end(wall: datetime) -> float:
    """The switch instant of the gap ``wall`` falls in, to the second, by bisection.

    zoneinfo does not expose its transitions. Read with the offset after the switch, a gap
    time lands before it; with the offset before, after it. Between the two the wall clock
    only moves forward, so the first second whose wall time is at or past ``wall`` is the
    switch. Runs only on days with a switch, once per range, and the result is memoized.
    """
    zone = wall.tzinfo
    naive = wall.replace(tzinfo=None)
    low_s, high_s = sorted(
        (int(wall.replace(fold=1).timestamp()), int(wall.replace(fold=0).timestamp()))
    )
    while low_s < high_s:
        middle_s = (low_s + high_s) // 2
        if datetime.fromtimestamp(middle_s, zone).replace(tzinfo=None) >= naive:
            high_s = middle_s
        else:
            low_s = middle_s + 1
    return float(low_s)
