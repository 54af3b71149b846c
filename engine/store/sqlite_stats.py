"""Reading a portal's history for statistics (docs/statistics.md), in bounded pieces.

A figure of a time range needs every dialog that had an event in the range, read from its
first event: whether a close was a miss, or how long the first answer took, depends on what
came before the range. So a query reads in two steps, each a page of bounded size, between
which the store's thread serves the routing steps again:

1. ``touched_dialogs``: the dialogs with an event in ``[start, end)``, a page at a time,
   along the ``history_time`` index (``portal_id, occurred_at``);
2. ``dialog_events``: the events statistics read of a few hundred of those dialogs, each
   from its first, along ``history_dialog`` (``portal_id, dialog_id, rowid``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.stats.events import STATS_KINDS, DialogEvent, from_history

Cursor = tuple[float, int]
"""Where a page of ``touched_dialogs`` ended: the last row's ``occurred_at`` and rowid."""

_KINDS = ", ".join(f"'{kind}'" for kind in STATS_KINDS)

TOUCHED = (
    "SELECT occurred_at, rowid, dialog_id FROM history INDEXED BY history_time"
    " WHERE portal_id = ? AND occurred_at >= ? AND occurred_at < ?"
    " AND (occurred_at, rowid) > (?, ?) ORDER BY occurred_at, rowid LIMIT ?"
)
"""A page of the range's history rows; ``INDEXED BY`` fails loudly if the index is gone."""


def touched_dialogs(
    db: sqlite3.Connection,
    portal_id: str,
    start: float,
    end: float,
    after: Cursor | None,
    limit: int,
) -> tuple[list[str], Cursor | None]:
    """Dialog ids of up to ``limit`` history rows in ``[start, end)`` after ``after`` (a
    dialog may repeat across pages), and the cursor of the next page (None at the end)."""
    at, rowid = after if after is not None else (start, 0)
    rows = db.execute(TOUCHED, (portal_id, start, end, at, rowid, limit)).fetchall()
    cursor = (float(rows[-1][0]), int(rows[-1][1])) if len(rows) == limit else None
    return [row[2] for row in rows], cursor


def dialog_events(
    db: sqlite3.Connection, portal_id: str, dialog_ids: Sequence[str], end: float
) -> list[DialogEvent]:
    """The events statistics read of these dialogs before ``end``, each dialog's in stream
    order from its first; a blocked customer's messages (never delivered) are left out."""
    if not dialog_ids:
        return []
    marks = ", ".join("?" * len(dialog_ids))
    rows = db.execute(
        "SELECT dialog_id, kind, occurred_at, dialog_json,"
        " CASE WHEN kind = 'message.received' THEN NULL ELSE payload END, reply_json"
        f" FROM history WHERE portal_id = ? AND dialog_id IN ({marks}) AND occurred_at < ?"
        f" AND kind IN ({_KINDS}) AND delivered = 1 ORDER BY dialog_id, rowid",
        (portal_id, *dialog_ids, end),
    ).fetchall()
    return [from_history(*row) for row in rows]
