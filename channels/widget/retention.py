"""Retention of the widget log: visitors, their conversations and uploads are removed once
they are past their widget's ``retention``, and never while a dialog of theirs is open
(docs/channels/widget.md, "Retention").

A visitor is removed whole (token, details, entries, uploads) or not at all, so what stays
is always a whole conversation: a visitor who comes back within the retention resumes from
their cursor and gets what they missed, once and in order, as before. Typing signals go
after ``TYPING_KEPT_S``: they are only ever shown live.

Each portal actor prunes the widgets of its own portals, because it owns their dialogs and
knows which are open without asking anyone (``MailboxHost.open_dialog_keys``). The loop
runs on the engine's clock, so tests move time instead of waiting an hour.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from channels.base import Channel
from channels.widget.channel import WidgetChannel
from channels.widget.config import WidgetRetention
from channels.widget.log import Forgotten, IdleVisitor, LogThread, shared_log
from engine.clock import Clock
from engine.config import ConnectorConfig
from engine.metrics import Counters

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
"""How often a portal actor prunes its widgets."""

TYPING_KEPT_S = 3600.0
"""Typing signals are kept this long (a backlog shows them for ``TYPING_SHOWN_S`` only)."""

PAGE = 500
"""Visitors read and removed per store call: the log's other users wait at most that long."""

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RetainedWidget:
    """A widget to prune: its connector, its settings, and the visitors with an open
    dialog (the dialog keys of its open dialogs), who are spared."""

    connector_id: str
    retention: WidgetRetention
    open_visitors: Collection[str]


def retained_widgets(
    connectors: Iterable[ConnectorConfig],
    channel: Callable[[ConnectorConfig], Channel],
    open_dialog_keys: Mapping[str, Collection[str]],
) -> list[RetainedWidget]:
    """The widgets among ``connectors``, each with the visitors its open dialogs spare
    (``open_dialog_keys``: per connector, as ``MailboxHost.open_dialog_keys`` gives)."""
    widgets: list[RetainedWidget] = []
    for connector in connectors:
        if connector.channel != WidgetChannel.name:
            continue
        built = channel(connector)
        assert isinstance(built, WidgetChannel)
        keys = open_dialog_keys.get(connector.id, ())
        widgets.append(RetainedWidget(connector.id, built.credentials.retention, keys))
    return widgets


PruneElsewhere = Callable[[Sequence[RetainedWidget]], Awaitable[Forgotten]]
"""Another node's log pruned for these widgets, there (its widget log actor)."""


class WidgetPruner:
    """Prunes the widgets it is given; ``run`` does so every ``every_s`` of the clock."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        counters: Counters,
        every_s: float = PRUNE_EVERY_S,
        elsewhere: Callable[[], Sequence[PruneElsewhere]] = lambda: (),
    ) -> None:
        """``path``: the widget log's file, whose appends the process stamps with the same
        clock (``stamp_with``): the retention compares like with like."""
        self._path = path
        self._elsewhere = elsewhere
        """The other nodes' logs (docs/channels/widget.md, "Across machines"): their
        visitors of the same widgets are pruned by the same pass, there."""
        self._clock = clock
        self._counters = counters
        self._every_s = every_s

    async def prune(self, widgets: Sequence[RetainedWidget]) -> Forgotten:
        """Every widget's visitors past their retention but those with an open dialog;
        the log is opened only when there are widgets to prune."""
        now = self._clock.now()
        total = Forgotten()
        for widget in widgets:
            total += await self._prune_widget(shared_log(self._path), widget, now)
        for what, count in (
            ("visitors", total.visitors),
            ("entries", total.entries),
            ("files", total.files),
        ):
            if count:
                self._counters.inc("openlines_widget_pruned_total", count, what=what)
        return total

    async def _prune_widget(
        self, log_thread: LogThread, widget: RetainedWidget, now: float
    ) -> Forgotten:
        store = log_thread.store
        history_before = now - widget.retention.history_days * DAY_S
        silent_before = now - widget.retention.silent_visitor_hours * 3600.0
        total = await log_thread.call(store.forget_typing, widget.connector_id, now - TYPING_KEPT_S)
        after: IdleVisitor | None = None
        while True:
            page = await log_thread.call(
                store.idle_visitors,
                widget.connector_id,
                history_before,
                silent_before,
                after,
                PAGE,
            )
            doomed = [v for v in page.idle if v not in widget.open_visitors]
            total += await log_thread.call(
                store.forget_visitors, doomed, history_before, silent_before
            )
            if page.last is None:
                return total
            after = page.last

    async def run(self, widgets: Callable[[], Sequence[RetainedWidget]]) -> None:
        """Prune every ``every_s``, with ``widgets()`` as they are then, here and in the
        other nodes' logs; a failed pass is logged and counted and the next one tries
        again (a loop boundary, one per log)."""
        while True:
            await self._clock.sleep(self._every_s)
            try:
                now_widgets = widgets()
                forgotten = await self.prune(now_widgets)
            except Exception:  # a loop boundary: the next pass prunes what this one left
                log.exception("widget retention: pruning failed")
                self._counters.inc("openlines_loop_errors_total", loop="widget_prune")
                continue
            for prune_there in self._elsewhere():
                try:
                    forgotten += await prune_there(now_widgets)
                except Exception:  # a loop boundary: that node's log is pruned next time
                    log.exception("widget retention: pruning another node's log failed")
                    self._counters.inc("openlines_loop_errors_total", loop="widget_prune")
            if forgotten.visitors or forgotten.entries:
                log.info(
                    "widget retention: removed %d visitors, %d entries, %d files",
                    forgotten.visitors,
                    forgotten.entries,
                    forgotten.files,
                )
