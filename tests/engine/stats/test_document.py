"""docs/statistics.md's example answer is what the code answers for the day it describes:
the document cannot drift from the figures (STYLE.md, lessons)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.stats.events import DialogEvent
from engine.stats.figures import Figures, Selection
from engine.stats.period import check_range, parse_instant
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

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "statistics.md"
DAY = 1_772_409_600.0  # Monday 2026-03-02 00:00 UTC
T = DAY + 10 * 3600  # 10:00 UTC


def the_documented_day() -> list[list[DialogEvent]]:
    """The four dialogs of the document's example, as the router writes them."""
    a = [
        queued(T, dialog="a"),
        assigned(T, "anna", dialog="a"),
        message(T, dialog="a"),
        answered(T + 30, "anna", dialog="a"),
        reply(T + 30, "anna", dialog="a"),
        message(T + 30, dialog="a"),
        reply(T + 50, "anna", dialog="a"),
        closed(T + 100, "finished", "anna", dialog="a"),
        rated(T + 160, {"score": 5}, "anna", dialog="a"),
    ]
    b = [
        queued(T + 60, dialog="b"),
        assigned(T + 60, "anna", dialog="b"),
        message(T + 60, dialog="b"),
        closed(T + 60, "finished", "anna", dialog="b"),
    ]
    c = [
        queued(T + 60, dialog="c"),
        assigned(T + 60, "anna", dialog="c"),
        message(T + 60, dialog="c"),
        closed(T + 60, "declined", "anna", spam=True, dialog="c"),
    ]
    d = [
        queued(T + 60, dialog="d"),
        assigned(T + 60, "anna", dialog="d"),
        message(T + 60, dialog="d"),
        transferred(T + 60, "support", "sales", "anna", dialog="d"),
        queued(T + 60, line="sales", reason="transferred", dialog="d"),
        assigned(T + 60, "chen", line="sales", dialog="d"),
        answered(T + 100, "chen", line="sales", dialog="d"),
        reply(T + 100, "chen", line="sales", dialog="d"),
    ]
    return [a, b, c, d]


def documented_answer() -> Any:
    text = DOCUMENT.read_text(encoding="utf-8")
    found = re.search(r"<!-- example:answer -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert found, "docs/statistics.md lost its example answer"
    return orjson.loads(found.group(1))


def test_the_documents_example_is_what_the_code_answers() -> None:
    figures = Figures(Selection(DAY, DAY + 2 * 86400, bucket="day"))
    for events in the_documented_day():
        figures.add(facts_of(events))
    assert documented_answer() == figures.as_json()


def test_the_documents_line_and_operator_views_of_that_day() -> None:
    def of(line_id: str | None, operator_id: str | None) -> dict[str, Any]:
        figures = Figures(Selection(DAY, DAY + 2 * 86400, line_id, operator_id))
        for events in the_documented_day():
            figures.add(facts_of(events))
        return figures.as_json()

    sales = of("sales", None)
    assert (sales["dialogs"]["received"], sales["dialogs"]["answered"]) == (0, 1)
    assert sales["dialogs"]["transferred_in"]["to_line"] == 1
    assert sales["first_answer_s"]["median"] == 40.0
    anna = of(None, "anna")["dialogs"]
    assert (anna["assigned"], anna["answered"], anna["missed"]["total"]) == (4, 1, 2)
    assert anna["transferred_out"]["to_line"] == 1


def test_the_documents_refusals_are_the_codes_words() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    with pytest.raises(ValueError) as too_long:
        check_range(parse_instant("2026-01-01"), parse_instant("2026-06-01"))
    assert f"to: Value error, {too_long.value}" in text
    with pytest.raises(ValueError) as not_a_time:
        parse_instant("yesterday")
    assert f"from: Value error, {not_a_time.value}" in text
