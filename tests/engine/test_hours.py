"""Working hours: wall-clock ranges in a zone, split shifts, nights, holidays, DST, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.routing.hours import WEEKDAYS, HoursConfig, Schedule, Weekday

WEEKDAYS_9_TO_18: dict[Weekday, tuple[str, ...]] = {
    day: ("09:00-18:00",) for day in ("mon", "tue", "wed", "thu", "fri")
}
HOUR_S = 3_600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix seconds of a UTC wall time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Unix seconds of a wall time in ``zone`` (its first occurrence if ambiguous)."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


def schedule(**fields: Any) -> Schedule:
    return HoursConfig(**fields).compile()


# -- the weekly table ---------------------------------------------------------------------


def test_a_weekday_schedule_opens_and_closes_on_time() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly=WEEKDAYS_9_TO_18)
    # 2026-06-15 is a Monday; Moscow is UTC+3 all year.
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 15, 8, 59))
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 15, 9, 0))
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 15, 18, 0) - 1)
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 15, 18, 0))
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 20, 12, 0))  # Saturday
    assert hours.is_open(utc(2026, 6, 15, 6, 0))
    at = local("Europe/Moscow", 2026, 6, 15, 12, 0)
    assert hours.next_opening(at) == at
    assert hours.next_closing(at) == local("Europe/Moscow", 2026, 6, 15, 18, 0)


def test_split_shifts_close_for_lunch() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly={"mon": ("09:00-13:00", "14:00-18:00")})
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 15, 12, 0))
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 15, 13, 30))
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 15, 14, 0))
    lunch = local("Europe/Moscow", 2026, 6, 15, 13, 0)
    assert hours.next_closing(local("Europe/Moscow", 2026, 6, 15, 10, 0)) == lunch
    assert hours.next_opening(lunch) == local("Europe/Moscow", 2026, 6, 15, 14, 0)


def test_a_range_past_midnight_runs_into_the_next_day() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly={"fri": ("22:00-02:00",)})
    # 2026-06-19 is a Friday.
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 19, 21, 59))
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 19, 23, 0))
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 20, 1, 0))
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 20, 2, 0))
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 19, 1, 0))  # Thursday night
    assert hours.next_closing(local("Europe/Moscow", 2026, 6, 19, 23, 0)) == local(
        "Europe/Moscow", 2026, 6, 20, 2, 0
    )


def test_whole_days_join_into_one_period() -> None:
    hours = schedule(weekly={"mon": ("00:00-24:00",), "tue": ("00:00-12:00",)})
    monday = utc(2026, 6, 15)
    assert hours.is_open(monday)
    assert hours.is_open(utc(2026, 6, 15, 23, 59, 59))
    assert not hours.is_open(monday - 1)
    assert hours.next_closing(monday) == utc(2026, 6, 16, 12, 0)


def test_overlapping_ranges_are_one_period() -> None:
    hours = schedule(weekly={"mon": ("09:00-13:00", "12:00-18:00"), "sun": ("20:00-10:00",)})
    assert hours.next_closing(utc(2026, 6, 14, 21, 0)) == utc(2026, 6, 15, 18, 0)


def test_always_open_ignores_the_table_but_not_holidays() -> None:
    hours = schedule(always_open=True, weekly={"mon": ("09:00-10:00",)})
    assert hours.is_open(utc(2026, 6, 20, 3, 0))
    assert hours.next_closing(utc(2026, 6, 20, 3, 0)) is None
    closed = schedule(always_open=True, holidays=[date(2026, 12, 31)])
    assert not closed.is_open(utc(2026, 12, 31, 12, 0))
    assert closed.next_closing(utc(2026, 6, 20)) == utc(2026, 12, 31)
    assert closed.next_opening(utc(2026, 12, 31, 12, 0)) == utc(2027, 1, 1)


# -- holidays and exceptional working days ------------------------------------------------


def test_a_dated_holiday_closes_its_day() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly=WEEKDAYS_9_TO_18, holidays=["2026-06-17"])
    assert hours.is_open(local("Europe/Moscow", 2026, 6, 16, 12, 0))
    assert not hours.is_open(local("Europe/Moscow", 2026, 6, 17, 12, 0))
    assert hours.next_opening(local("Europe/Moscow", 2026, 6, 16, 19, 0)) == local(
        "Europe/Moscow", 2026, 6, 18, 9, 0
    )


def test_a_holiday_closes_only_ranges_that_start_on_it() -> None:
    """Friday's night shift runs into a holiday Saturday; a holiday Friday has none."""
    night = {"fri": ("22:00-02:00",)}
    into_holiday = schedule(weekly=night, holidays=[date(2026, 6, 20)])
    assert into_holiday.is_open(utc(2026, 6, 20, 1, 0))
    assert into_holiday.next_closing(utc(2026, 6, 19, 23, 0)) == utc(2026, 6, 20, 2, 0)
    on_holiday = schedule(weekly=night, holidays=[date(2026, 6, 19)])
    assert not on_holiday.is_open(utc(2026, 6, 19, 23, 0))
    assert not on_holiday.is_open(utc(2026, 6, 20, 1, 0))


def test_country_holidays_close_every_public_holiday() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly=WEEKDAYS_9_TO_18, country_holidays="RU")
    public = holidays.country_holidays("RU", years=2026)
    assert date(2026, 1, 1) in public
    closed_weekdays = [day for day in public if day.weekday() < 5]
    assert closed_weekdays
    for day in closed_weekdays:
        assert not hours.is_open(local("Europe/Moscow", day.year, day.month, day.day, 12, 0))
    first_open = min(
        day
        for day in (date(2026, 1, 1) + timedelta(days=n) for n in range(30))
        if day.weekday() < 5 and day not in public
    )
    assert hours.next_opening(local("Europe/Moscow", 2026, 1, 1, 12, 0)) == local(
        "Europe/Moscow", first_open.year, first_open.month, first_open.day, 9, 0
    )


def test_country_codes_are_case_insensitive_and_subdivisions_apply() -> None:
    config = HoursConfig(weekly=WEEKDAYS_9_TO_18, country_holidays="de", country_subdivision="BY")
    assert config.country_holidays == "DE"
    # Epiphany (Jan 6, a Tuesday in 2026) is a public holiday in Bavaria, not in Berlin.
    assert not config.compile().is_open(utc(2026, 1, 6, 12, 0))
    berlin = schedule(weekly=WEEKDAYS_9_TO_18, country_holidays="DE", country_subdivision="BE")
    assert berlin.is_open(utc(2026, 1, 6, 12, 0))


def test_an_exceptional_working_day_opens_a_saturday_and_beats_a_holiday() -> None:
    hours = schedule(
        weekly=WEEKDAYS_9_TO_18,
        holidays=[date(2026, 6, 22)],
        working_days={date(2026, 6, 20): ("10:00-14:00",), date(2026, 6, 22): ("09:00-12:00",)},
    )
    assert not hours.is_open(utc(2026, 6, 13, 11, 0))  # an ordinary Saturday
    assert hours.is_open(utc(2026, 6, 20, 11, 0))
    assert not hours.is_open(utc(2026, 6, 20, 15, 0))
    assert hours.is_open(utc(2026, 6, 22, 11, 0))
    assert not hours.is_open(utc(2026, 6, 22, 13, 0))
    assert hours.next_opening(utc(2026, 6, 19, 19, 0)) == utc(2026, 6, 20, 10, 0)


def test_hours_load_from_yaml() -> None:
    text = """
timezone: Europe/Moscow
weekly:
  mon: ["09:00-13:00", "14:00-18:00"]
  fri: ["22:00-02:00"]
holidays: [2026-06-12]
working_days:
  2026-06-13: ["10:00-16:00"]
"""
    config = HoursConfig.model_validate(yaml.safe_load(text))
    assert config.holidays == (date(2026, 6, 12),)
    assert config.compile().is_open(local("Europe/Moscow", 2026, 6, 13, 12, 0))


# -- next opening -------------------------------------------------------------------------


def test_next_opening_crosses_a_weekend_and_a_holiday() -> None:
    hours = schedule(timezone="Europe/Moscow", weekly=WEEKDAYS_9_TO_18, holidays=["2026-06-22"])
    friday_evening = local("Europe/Moscow", 2026, 6, 19, 19, 0)
    assert hours.next_opening(friday_evening) == local("Europe/Moscow", 2026, 6, 23, 9, 0)
    assert hours.describe_opening(friday_evening) == "Tue 2026-06-23 09:00 (Europe/Moscow)"
    plain = schedule(timezone="Europe/Moscow", weekly=WEEKDAYS_9_TO_18)
    assert plain.next_opening(friday_evening) == local("Europe/Moscow", 2026, 6, 22, 9, 0)
    assert plain.describe_opening(friday_evening) == "Mon 2026-06-22 09:00 (Europe/Moscow)"


def test_a_schedule_that_never_opens_says_none() -> None:
    for hours in (
        schedule(),
        schedule(weekly={"mon": ()}),
        schedule(
            always_open=True, holidays=[date(2026, 1, 1) + timedelta(days=n) for n in range(402)]
        ),
    ):
        assert hours.next_opening(utc(2026, 1, 1)) is None
        assert hours.describe_opening(utc(2026, 1, 1)) is None
        assert hours.next_closing(utc(2026, 1, 1)) is None


def test_an_opening_beyond_the_horizon_is_none() -> None:
    hours = schedule(working_days={date(2028, 1, 1): ("09:00-10:00",)})
    assert hours.next_opening(utc(2026, 1, 1)) is None
    assert hours.next_opening(utc(2027, 6, 1)) == utc(2028, 1, 1, 9, 0)


def test_next_closing_is_none_when_closed() -> None:
    hours = schedule(weekly=WEEKDAYS_9_TO_18)
    assert hours.next_closing(utc(2026, 6, 20, 12, 0)) is None


def test_two_zones_at_the_same_instant() -> None:
    vladivostok = schedule(timezone="Asia/Vladivostok", weekly=WEEKDAYS_9_TO_18)
    los_angeles = schedule(timezone="America/Los_Angeles", weekly=WEEKDAYS_9_TO_18)
    at = utc(2026, 6, 15, 17, 0)  # Tue 03:00 in Vladivostok, Mon 10:00 in Los Angeles
    assert not vladivostok.is_open(at)
    assert los_angeles.is_open(at)
    assert vladivostok.next_opening(at) == utc(2026, 6, 15, 23, 0)
    assert los_angeles.next_closing(at) == utc(2026, 6, 16, 1, 0)
    assert vladivostok.describe_opening(at) == "Tue 2026-06-16 09:00 (Asia/Vladivostok)"


# -- daylight-saving time -----------------------------------------------------------------

EVERY_DAY_9_TO_18: dict[Weekday, tuple[str, ...]] = {day: ("09:00-18:00",) for day in WEEKDAYS}


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Europe/Berlin springs forward 2026-03-29 and falls back 2026-10-25.
        ("Europe/Berlin", utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 7, 0)),
        ("Europe/Berlin", utc(2026, 10, 24, 7, 0), utc(2026, 10, 25, 8, 0)),
        # America/New_York springs forward 2026-03-08 and falls back 2026-11-01.
        ("America/New_York", utc(2026, 3, 7, 14, 0), utc(2026, 3, 8, 13, 0)),
        ("America/New_York", utc(2026, 10, 31, 13, 0), utc(2026, 11, 1, 14, 0)),
    ],
)
def test_nine_oclock_follows_the_switch(zone: str, before: float, after: float) -> None:
    hours = schedule(timezone=zone, weekly=EVERY_DAY_9_TO_18)
    assert hours.next_opening(before - HOUR_S) == before
    assert hours.next_closing(before) == before + 9 * HOUR_S
    assert hours.next_opening(before + 12 * HOUR_S) == after
    assert hours.next_closing(after) == after + 9 * HOUR_S


@pytest.mark.parametrize(
    ("zone", "day", "opens", "real_hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 29, 0, 0), 1),
        ("Europe/Berlin", date(2026, 10, 25), utc(2026, 10, 24, 23, 0), 3),
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 6, 0), 1),
        ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 5, 0), 3),
    ],
)
def test_one_to_three_lasts_the_real_time_between(
    zone: str, day: date, opens: float, real_hours: int
) -> None:
    """A start means the first occurrence, an end the last: every wall time in between."""
    hours = schedule(timezone=zone, weekly={"sun": ("01:00-03:00",)})
    assert hours.next_opening(opens - 6 * HOUR_S) == opens
    assert hours.next_closing(opens) == opens + real_hours * HOUR_S
    assert WEEKDAYS[day.weekday()] == "sun"


@pytest.mark.parametrize(
    ("zone", "text", "opens", "closes"),
    [
        # New York repeats 01:00-02:00 on 2026-11-01 (EDT, then EST).
        ("America/New_York", "00:00-01:30", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 6, 30)),
        ("America/New_York", "01:30-04:00", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 9, 0)),
        # Berlin repeats 02:00-03:00 on 2026-10-25 (CEST, then CET).
        ("Europe/Berlin", "02:00-02:30", utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_repeated_times_start_at_the_first_and_end_at_the_last(
    zone: str, text: str, opens: float, closes: float
) -> None:
    hours = schedule(timezone=zone, weekly={"sun": (text,)})
    assert hours.next_opening(opens - 6 * HOUR_S) == opens
    assert hours.next_closing(opens) == closes


def test_a_range_inside_the_spring_gap_is_skipped() -> None:
    hours = schedule(timezone="Europe/Berlin", weekly={"sun": ("02:00-03:00",)})
    assert hours.next_opening(utc(2026, 3, 28)) == local("Europe/Berlin", 2026, 4, 5, 2, 0)


def test_a_range_starting_in_the_spring_gap_starts_at_the_switch() -> None:
    hours = schedule(timezone="Europe/Berlin", weekly={"sun": ("02:30-04:00",)})
    switch = utc(2026, 3, 29, 1, 0)
    assert hours.next_opening(utc(2026, 3, 28)) == switch
    assert hours.next_closing(switch) == utc(2026, 3, 29, 2, 0)
    assert hours.describe_opening(utc(2026, 3, 28)) == "Sun 2026-03-29 03:00 (Europe/Berlin)"


def test_a_range_ending_in_the_spring_gap_ends_at_the_switch() -> None:
    hours = schedule(timezone="Europe/Berlin", weekly={"sun": ("01:00-02:30",)})
    assert hours.next_closing(utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)


def test_a_midnight_that_does_not_exist() -> None:
    """America/Santiago springs forward at midnight: 2026-09-06 starts at 01:00."""
    hours = schedule(timezone="America/Santiago", weekly={"sun": ("00:00-02:00",)})
    opens = hours.next_opening(utc(2026, 9, 5))
    assert opens == local("America/Santiago", 2026, 9, 6, 1, 0)
    assert hours.next_closing(opens) == opens + HOUR_S


# -- invalid input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Phobos"}, r"'Mars/Phobos' is not a known time zone"),
        ({"timezone": "../etc/passwd"}, r"'\.\./etc/passwd' is not a known time zone"),
        ({"weekly": {"mon": ("9-18",)}}, r"weekly\.mon: '9-18' is not a time range; expected"),
        ({"weekly": {"tue": ("09:00 - 18:00",)}}, r"weekly\.tue: '09:00 - 18:00' is not a"),
        ({"weekly": {"wed": ("25:00-26:00",)}}, r"weekly\.wed: '25:00-26:00' starts at hour 25"),
        ({"weekly": {"wed": ("09:00-25:00",)}}, r"weekly\.wed: '09:00-25:00' ends at 25:00"),
        ({"weekly": {"wed": ("09:00-24:30",)}}, r"'09:00-24:30' ends at 24:30"),
        ({"weekly": {"wed": ("24:00-02:00",)}}, r"'24:00-02:00' starts at hour 24"),
        ({"weekly": {"thu": ("12:60-13:00",)}}, r"weekly\.thu: '12:60-13:00' has a minute"),
        ({"weekly": {"fri": ("10:00-10:00",)}}, r"weekly\.fri: '10:00-10:00' starts and ends"),
        ({"weekly": {"fri": ("00:00-00:00",)}}, r"'00:00-00:00' starts and ends at the same"),
        ({"weekly": {"monday": ("09:00-18:00",)}}, r"monday"),
        (
            {"working_days": {"2026-06-20": ("10:00-1400",)}},
            r"working_days\.2026-06-20: '10:00-1400' is not a time range",
        ),
        ({"working_days": {"2026-06-20": ()}}, r"working_days\.2026-06-20: no ranges"),
        ({"country_holidays": "XX"}, r"country_holidays: 'XX' is not a country"),
        (
            {"country_holidays": "DE", "country_subdivision": "ZZ"},
            r"country_subdivision: 'ZZ' is not a subdivision of DE; expected one of: BB",
        ),
        ({"country_subdivision": "BY"}, r"country_subdivision 'BY' needs country_holidays"),
        ({"holidays": ["2026-02-30"]}, r"2026-02-30"),
        ({"open_on_sundays": True}, r"open_on_sundays\n.*Extra inputs are not permitted"),
    ],
)
def test_invalid_hours_name_the_bad_value(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HoursConfig(**fields)


# -- properties ---------------------------------------------------------------------------

QUARTERS = st.integers(min_value=0, max_value=96)
ZONES = (
    "UTC",
    "Asia/Vladivostok",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # switches at midnight
    "Australia/Lord_Howe",  # switches by half an hour
)
FIXED_ZONES = ("UTC", "Asia/Vladivostok", "Asia/Kolkata")
SWITCH_DAYS = tuple(
    utc(2026, month, day)
    for month, day in ((3, 8), (3, 29), (4, 5), (9, 6), (10, 4), (10, 25), (11, 1))
)


def clock_text(quarter: int) -> str:
    return f"{quarter * 15 // 60:02d}:{quarter * 15 % 60:02d}"


@st.composite
def range_texts(draw: st.DrawFn) -> str:
    start = draw(st.integers(min_value=0, max_value=95))
    end = draw(QUARTERS.filter(lambda quarter: quarter % 96 != start))
    return f"{clock_text(start)}-{clock_text(end)}"


DAY_RANGES = st.lists(range_texts(), max_size=3).map(tuple)
DATES = st.dates(min_value=date(2025, 12, 1), max_value=date(2027, 1, 31))


@st.composite
def hours_configs(draw: st.DrawFn, zones: tuple[str, ...] = ZONES) -> HoursConfig:
    return HoursConfig(
        timezone=draw(st.sampled_from(zones)),
        weekly=draw(st.dictionaries(st.sampled_from(WEEKDAYS), DAY_RANGES)),
        always_open=draw(st.sampled_from((False, False, False, True))),
        holidays=tuple(draw(st.lists(DATES, max_size=20))),
        working_days=draw(st.dictionaries(DATES, DAY_RANGES.filter(bool), max_size=5)),
    )


INSTANTS = st.one_of(
    st.floats(min_value=utc(2025, 12, 1), max_value=utc(2027, 1, 31)),
    st.builds(
        lambda day, offset: day + offset,
        st.sampled_from(SWITCH_DAYS),
        st.integers(min_value=-3 * 86_400, max_value=3 * 86_400).map(float),
    ),
)
FRACTIONS = st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), max_size=30)


@settings(max_examples=400, deadline=None, database=None)
@given(config=hours_configs(), at_s=INSTANTS, fractions=FRACTIONS)
def test_next_opening_is_the_first_open_instant(
    config: HoursConfig, at_s: float, fractions: list[float]
) -> None:
    hours = config.compile()
    opening = hours.next_opening(at_s)
    if opening is None:
        return
    assert opening >= at_s
    assert hours.is_open(opening)
    probes = [at_s + fraction * (opening - at_s) for fraction in fractions]
    probes += [opening - 0.5] if opening - 0.5 >= at_s else []
    for probe in probes:
        if probe < opening:
            assert not hours.is_open(probe), (probe, opening)


@settings(max_examples=400, deadline=None, database=None)
@given(config=hours_configs(), at_s=INSTANTS, fractions=FRACTIONS)
def test_next_closing_is_the_first_closed_instant(
    config: HoursConfig, at_s: float, fractions: list[float]
) -> None:
    hours = config.compile()
    closing = hours.next_closing(at_s)
    if closing is None:
        return
    assert closing > at_s
    assert not hours.is_open(closing)
    for probe in [at_s + fraction * (closing - at_s) for fraction in fractions] + [closing - 0.5]:
        if at_s <= probe < closing:
            assert hours.is_open(probe), (probe, closing)


def oracle_is_open(config: HoursConfig, at_s: int) -> bool:
    """Wall-clock arithmetic written afresh, valid where the zone has no switches."""
    wall = datetime.fromtimestamp(at_s, ZoneInfo(config.timezone))
    second = wall.hour * 3600 + wall.minute * 60 + wall.second
    today = wall.date()
    for day, shift_s in ((today, 0), (today - timedelta(days=1), 86_400)):
        if day in config.working_days:
            texts = config.working_days[day]
        elif day in config.holidays:
            texts = ()
        elif config.always_open:
            texts = ("00:00-24:00",)
        else:
            texts = config.weekly.get(WEEKDAYS[day.weekday()], ())
        for text in texts:
            start_s, end_s = (int(part[:2]) * 3600 + int(part[3:]) * 60 for part in text.split("-"))
            if end_s <= start_s:
                end_s += 86_400
            if start_s <= second + shift_s < end_s:
                return True
    return False


@settings(max_examples=400, deadline=None, database=None)
@given(
    config=hours_configs(zones=FIXED_ZONES),
    at_s=st.integers(min_value=int(utc(2025, 12, 1)), max_value=int(utc(2027, 1, 31))),
)
def test_is_open_agrees_with_plain_wall_clock_arithmetic(config: HoursConfig, at_s: int) -> None:
    assert config.compile().is_open(at_s) == oracle_is_open(config, at_s)
