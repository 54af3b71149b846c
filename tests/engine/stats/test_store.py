"""Reading statistics from a real SQLite history: a range's dialogs read from their first
event, in small pages, one portal's only; the index the range scan rides on."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.errors import NotFoundError
from engine.events import (
    Decline,
    DialogAnswered,
    DialogAssigned,
    DialogClosed,
    DialogQueued,
    DialogTransferred,
    event_type,
)
from engine.models import Frozen
from engine.routing.plan import Plan, StreamEntry
from engine.routing.state import DialogState
from engine.routing.statistics import Statistics
from engine.stats.figures import Selection
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.sqlite_stats import TOUCHED
from engine.store.threaded import ThreadedStore

T0 = 1_772_409_600.0  # 2026-03-02 00:00 UTC
HOUR = 3600.0


class History:
    """Events written as a routing step writes them (``commit_plan``), at chosen times."""

    def __init__(self, outbox: SqliteOutbox) -> None:
        self.outbox = outbox
        self._n = 0

    def write(self, portal_id: str, stamp: DialogState, at: float, data: Frozen) -> None:
        self._n += 1
        entry = StreamEntry(
            f"evt_{self._n}",
            event_type(data),
            stamp.dialog_id,
            stamp.ref,
            stamp.view_json(),
            at,
            data,
        )
        self.outbox.commit_plan(portal_id, Plan(entries=[entry]), [], [], at, False)


def stamp(dialog_id: str, line: str = "support", operator: str | None = None) -> DialogState:
    state = DialogState(dialog_id, line, "tg", "telegram", dialog_id, "c", opened_at=T0)
    state.operator_id = operator
    return state


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ThreadedStore[SqliteOutbox]]:
    threaded = ThreadedStore(SqliteOutbox(tmp_path / "outbox.sqlite3"), ManualClock(T0))
    yield threaded
    await threaded.close()


def lines_of(*known: str) -> Callable[[str], None]:
    def check(line_id: str) -> None:
        if line_id not in known:
            raise NotFoundError(f"no line {line_id!r}")

    return check


def write_day(history: History) -> None:
    """Portal p1: d1 opened the evening before and answered in the range, d2 missed in the
    range, d3 declined as spam, d4 moved to sales and answered there; d5 after the range.
    Portal p2: a dialog at the same times, never p1's."""
    write = history.write
    write("p1", stamp("d1"), T0 - HOUR, DialogQueued(reason="new", position=1))
    write("p1", stamp("d1", operator="anna"), T0 - HOUR, assign("anna"))
    write("p1", stamp("d1", operator="anna"), T0 + 60, DialogAnswered(operator_id="anna"))
    write("p1", stamp("d2"), T0 + HOUR, DialogQueued(reason="new", position=1))
    write("p1", stamp("d2"), T0 + 2 * HOUR, DialogClosed(reason="finished", operator_id=None))
    write("p1", stamp("d3"), T0 + HOUR, DialogQueued(reason="new", position=2))
    write("p1", stamp("d3", operator="boris"), T0 + HOUR, assign("boris"))
    spam = Decline(spam=True, customer_told=False, blocked=True)
    closed = DialogClosed(reason="declined", operator_id="boris", closed_by="boris", decline=spam)
    write("p1", stamp("d3", operator="boris"), T0 + HOUR + 5, closed)
    write("p1", stamp("d4"), T0 + 3 * HOUR, DialogQueued(reason="new", position=1))
    moved = DialogTransferred(from_line="support", to_line="sales", reason="outside_hours")
    write("p1", stamp("d4", "sales"), T0 + 3 * HOUR, moved)
    queued_there = DialogQueued(reason="transferred", position=1)
    write("p1", stamp("d4", "sales"), T0 + 3 * HOUR, queued_there)
    write("p1", stamp("d4", "sales", "chen"), T0 + 3 * HOUR + 10, assign("chen"))
    answer = DialogAnswered(operator_id="chen")
    write("p1", stamp("d4", "sales", "chen"), T0 + 3 * HOUR + 100, answer)
    write("p1", stamp("d5"), T0 + 24 * HOUR, DialogQueued(reason="new", position=1))
    write("p2", stamp("x1"), T0 + HOUR, DialogQueued(reason="new", position=1))
    write("p2", stamp("x1"), T0 + 2 * HOUR, DialogClosed(reason="finished", operator_id=None))


def assign(operator: str) -> DialogAssigned:
    return DialogAssigned(operator_id=operator, via="direct", decision_id="dec")


@pytest.mark.parametrize(("rows_per_page", "dialogs_per_read"), [(5000, 500), (1, 1), (2, 3)])
async def test_a_days_figures_read_each_dialog_from_its_first_event(
    store: ThreadedStore[SqliteOutbox], rows_per_page: int, dialogs_per_read: int
) -> None:
    write_day(History(store.store))
    lines = lines_of("support", "sales")
    stats = Statistics("p1", store, lines, rows_per_page, dialogs_per_read)  # type: ignore[arg-type]

    body = await stats.report(Selection(T0, T0 + 24 * HOUR, bucket="hour"))

    dialogs = body["dialogs"]
    assert (dialogs["received"], dialogs["assigned"], dialogs["answered"]) == (3, 2, 2)
    assert dialogs["missed"]["total"] == 2
    assert dialogs["missed"]["by_reason"]["finished"] == 1
    assert dialogs["missed"]["by_reason"]["declined"] == 1
    assert dialogs["declined"] == {"total": 1, "refused": 0, "spam": 1}
    moved = {"to_line": 1, "to_operator": 0}
    assert dialogs["transferred_out"] == dialogs["transferred_in"] == moved
    # d1 waited from the evening before: its first answer took 3660 s.
    assert body["first_answer_s"] == {"count": 2, "median": 100.0, "p90": 3660.0}
    assert [(b["start"] - T0, b["received"], b["missed"]) for b in body["load"][:4]] == [
        (0.0, 0, 0),
        (HOUR, 2, 1),
        (2 * HOUR, 0, 1),
        (3 * HOUR, 1, 0),
    ]
    assert len(body["load"]) == 24

    sales = await stats.report(Selection(T0, T0 + 24 * HOUR, line_id="sales"))
    assert sales["first_answer_s"] == {"count": 1, "median": 100.0, "p90": 100.0}
    with pytest.raises(NotFoundError, match="no line 'billing'"):
        await stats.report(Selection(T0, T0 + HOUR, line_id="billing"))


async def test_one_portal_never_sees_anothers_dialogs(store: ThreadedStore[SqliteOutbox]) -> None:
    write_day(History(store.store))
    other = Statistics("p2", store, lines_of("support"), 1, 1)  # type: ignore[arg-type]
    body = await other.report(Selection(T0, T0 + 24 * HOUR))
    assert (body["dialogs"]["received"], body["dialogs"]["missed"]["total"]) == (1, 1)
    nobody = Statistics("p3", store, lines_of("support"))  # type: ignore[arg-type]
    assert (await nobody.report(Selection(T0, T0 + HOUR)))["dialogs"]["received"] == 0


def test_the_range_scan_rides_the_history_time_index(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    SqliteOutbox(path).close()  # the schema, as the engine creates it
    db = sqlite3.connect(path)
    try:
        plan = db.execute(f"EXPLAIN QUERY PLAN {TOUCHED}", ("p1", 0, 1, 0, 0, 10)).fetchall()
    finally:
        db.close()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX history_time (portal_id=? AND occurred_at>? AND occurred_at<?)" in details
    assert "TEMP B-TREE" not in details  # ordered by the index itself
