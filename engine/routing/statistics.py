"""A portal's statistics for a time range, read from its dialogs' history.

The portal API's ``GET /api/v1/stats`` lands here (``engine.routing.operator_calls``). The
history is read in bounded pages (``engine.store.sqlite_stats``) and each page folded at
once into the figures (``engine.stats``), so one query holds neither the store's thread nor
the actor's event loop for long: routing steps run between the pages. docs/statistics.md
defines every figure.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby
from typing import Any

from engine.stats.figures import Figures, Selection
from engine.stats.timeline import facts_of
from engine.store.base import OutboxStore
from engine.store.sqlite_stats import Cursor
from engine.store.threaded import ThreadedStore

ROWS_PER_PAGE = 5000
"""History rows of the range scanned per read of the store."""
DIALOGS_PER_READ = 500
"""Dialogs whose events are read per read of the store."""


class Statistics:
    def __init__(
        self,
        portal_id: str,
        store: ThreadedStore[OutboxStore],
        known_line: Callable[[str], None],
        rows_per_page: int = ROWS_PER_PAGE,
        dialogs_per_read: int = DIALOGS_PER_READ,
    ) -> None:
        self._portal_id = portal_id
        self._store = store
        self._known_line = known_line
        """Raises ``NotFoundError`` for a line the portal does not have."""
        self._rows_per_page = rows_per_page
        self._dialogs_per_read = dialogs_per_read

    async def report(self, selection: Selection) -> dict[str, Any]:
        """The selection's figures as the API answers them."""
        if selection.line_id is not None:
            self._known_line(selection.line_id)
        figures = Figures(selection)
        seen: set[str] = set()
        cursor: Cursor | None = None
        while True:
            dialog_ids, cursor = await self._store.call(
                self._store.store.stats_dialogs,
                self._portal_id,
                selection.start,
                selection.end,
                cursor,
                self._rows_per_page,
            )
            fresh = [d for d in dict.fromkeys(dialog_ids) if d not in seen]
            seen.update(fresh)
            step = self._dialogs_per_read
            for first in range(0, len(fresh), step):
                await self._fold(figures, fresh[first : first + step], selection.end)
            if cursor is None:
                return figures.as_json()

    async def _fold(self, figures: Figures, dialog_ids: list[str], end: float) -> None:
        events = await self._store.call(
            self._store.store.stats_events, self._portal_id, dialog_ids, end
        )
        for _, of_dialog in groupby(events, key=lambda event: event.dialog_id):
            figures.add(facts_of(list(of_dialog)))
