"""Facts into figures: the range, the selection, quantiles, ratings and the load series
(docs/statistics.md)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.stats.events import DialogEvent
from engine.stats.figures import Figures, Selection
from engine.stats.period import MAX_RANGE_S, bucket_start, check_range, parse_instant
from engine.stats.quantiles import nearest_rank, summary
from engine.stats.timeline import facts_of
from tests.engine.stats.events import (
    answered,
    assigned,
    closed,
    message,
    queued,
    rated,
    reply,
    transferred,
)

DAY = 86400.0
T0 = 1_772_409_600.0  # 2026-03-02 00:00 UTC


def report(selection: Selection, *dialogs: list[DialogEvent]) -> dict[str, Any]:
    figures = Figures(selection)
    for events in dialogs:
        figures.add(facts_of(events))
    return figures.as_json()


def answered_dialog(
    dialog: str, opened: float, first_answer_s: float, operator: str
) -> list[DialogEvent]:
    return [
        queued(opened, dialog=dialog),
        assigned(opened, operator, dialog=dialog),
        message(opened, dialog=dialog),
        answered(opened + first_answer_s, operator, dialog=dialog),
        reply(opened + first_answer_s, operator, dialog=dialog),
    ]


def test_figures_of_a_range_count_facts_inside_it_only() -> None:
    early = answered_dialog("d1", T0 - 100, 50, "anna")  # opened and answered before
    spans = answered_dialog("d2", T0 - 10, 40, "anna")  # opened before, answered inside
    inside = [
        *answered_dialog("d3", T0 + 10, 20, "boris"),
        closed(T0 + 3600, "finished", "boris", dialog="d3"),
    ]
    late = answered_dialog("d4", T0 + DAY, 5, "boris")  # at ``to``: excluded
    body = report(Selection(T0, T0 + DAY), early, spans, inside, late)

    dialogs = body["dialogs"]
    assert (dialogs["received"], dialogs["assigned"], dialogs["answered"]) == (1, 1, 2)
    assert body["first_answer_s"] == {"count": 2, "median": 20.0, "p90": 40.0}
    assert dialogs["closed"] == {
        "total": 1,
        "by_reason": {"finished": 1, "auto_closed": 0, "declined": 0, "operator_unavailable": 0},
    }
    assert dialogs["missed"]["total"] == 0
    assert body["load"] == [
        {"start": T0, "received": 1, "assigned": 1, "answered": 2, "missed": 0, "closed": 1}
    ]


def test_a_line_and_an_operator_select_the_facts_attributed_to_them() -> None:
    moved = [
        queued(T0, dialog="d1"),
        assigned(T0, "anna", dialog="d1"),
        transferred(T0 + 5, "support", "sales", "anna", dialog="d1"),
        queued(T0 + 5, line="sales", reason="transferred", dialog="d1"),
        assigned(T0 + 6, "chen", line="sales", dialog="d1"),
        answered(T0 + 30, "chen", line="sales", dialog="d1"),
        closed(T0 + 40, "finished", "chen", line="sales", dialog="d1"),
    ]
    missed = [
        queued(T0, dialog="d2"),
        assigned(T0, "anna", dialog="d2"),
        closed(T0 + 50, "declined", "anna", spam=False, dialog="d2"),
    ]
    end = T0 + 3600

    support = report(Selection(T0, end, line_id="support"), moved, missed)["dialogs"]
    assert (support["received"], support["answered"], support["missed"]["total"]) == (2, 0, 1)
    assert support["transferred_out"] == {"to_line": 1, "to_operator": 0}
    assert support["transferred_in"] == {"to_line": 0, "to_operator": 0}
    assert support["declined"] == {"total": 1, "refused": 1, "spam": 0}

    sales = report(Selection(T0, end, line_id="sales"), moved, missed)["dialogs"]
    assert (sales["received"], sales["answered"], sales["closed"]["total"]) == (0, 1, 1)
    assert sales["transferred_in"] == {"to_line": 1, "to_operator": 0}

    anna = report(Selection(T0, end, operator_id="anna"), moved, missed)
    assert anna["dialogs"]["received"] == 0  # a dialog is received by a line, not a person
    assert (anna["dialogs"]["assigned"], anna["dialogs"]["answered"]) == (2, 0)
    assert anna["dialogs"]["missed"]["by_reason"]["declined"] == 1
    assert anna["dialogs"]["transferred_out"] == {"to_line": 1, "to_operator": 0}

    chen_on_support = report(Selection(T0, end, "support", "chen"), moved, missed)
    assert chen_on_support["dialogs"]["answered"] == 0
    chen = report(Selection(T0, end, "sales", "chen"), moved, missed)
    assert chen["first_answer_s"] == {"count": 1, "median": 30.0, "p90": 30.0}


def test_ratings_count_every_rating_and_average_the_numeric_ones() -> None:
    events = [
        queued(T0),
        closed(T0 + 1, "finished", None),
        rated(T0 + 2, {"score": 4}, "anna"),
        rated(T0 + 3, {"score": 10}, "anna"),
        rated(T0 + 4, {"score": 2.5}, "anna"),
        rated(T0 + 5, {"stars": 5}, "anna"),
    ]
    ratings = report(Selection(T0, T0 + 60), events)["ratings"]
    assert ratings == {
        "count": 4,
        "average": (4 + 10 + 2.5) / 3,
        "by_score": {"2.5": 1, "4": 1, "10": 1},
    }
    assert report(Selection(T0, T0 + 60))["ratings"] == {
        "count": 0,
        "average": None,
        "by_score": {},
    }


def test_the_load_series_has_every_bucket_of_the_range_in_utc() -> None:
    events = [queued(T0 + 1800), queued(T0 + 3 * 3600 + 5, dialog="d2")]
    load = report(Selection(T0 + 1200, T0 + 4 * 3600, bucket="hour"), events)["load"]
    assert [(b["start"] - T0, b["received"]) for b in load] == [
        (0.0, 1),  # the first bucket starts on the hour, before ``from``
        (3600.0, 0),
        (7200.0, 0),
        (10800.0, 1),
    ]
    days = report(Selection(T0 - 1, T0 + DAY + 1), events)["load"]
    assert [b["start"] for b in days] == [T0 - DAY, T0, T0 + DAY]


def test_nearest_rank_reports_observed_values() -> None:
    assert nearest_rank([10.0, 20.0, 30.0, 40.0], 50) == 20.0
    assert nearest_rank([10.0, 20.0, 30.0, 40.0], 90) == 40.0
    assert nearest_rank(list(map(float, range(1, 11))), 90) == 9.0
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank([], 50) is None
    assert summary([3.0, 1.0, 2.0]) == {"count": 3, "median": 2.0, "p90": 3.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1772409600", T0),
        ("1772409600.5", T0 + 0.5),
        ("2026-03-02", T0),
        ("2026-03-02T10:00:00", T0 + 36000),
        ("2026-03-02T10:00:00Z", T0 + 36000),
        ("2026-03-02T10:00:00+03:00", T0 + 25200),
    ],
)
def test_instants_are_unix_seconds_or_iso_in_utc_unless_zoned(text: str, seconds: float) -> None:
    assert parse_instant(text) == seconds


@pytest.mark.parametrize("text", ["", "yesterday", "-5", "nan", "inf", "1e9", "2026-13-01"])
def test_other_instants_are_refused_with_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match="neither Unix seconds nor an ISO 8601"):
        parse_instant(text)


def test_a_range_runs_forward_and_at_most_92_days() -> None:
    check_range(T0, T0 + MAX_RANGE_S)
    with pytest.raises(ValueError, match=r"must be after from"):
        check_range(T0, T0)
    with pytest.raises(ValueError, match=r"is 7948801 s, longer than 92 days \(7948800 s\)"):
        check_range(T0, T0 + MAX_RANGE_S + 1)
    assert bucket_start(T0 + 3599, "hour") == T0
    assert bucket_start(T0 + 3600, "hour") == T0 + 3600
