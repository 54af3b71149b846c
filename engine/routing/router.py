"""The router: opens dialogs for new conversations and assigns them to operators.

Decisions are a pure function of the durable state, the rules snapshot and the clock, so a
restarted router continues where it stopped and tests never sleep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.clock import Clock
from engine.errors import ConfigError
from engine.ids import new_id
from engine.models import DialogInfo
from engine.routing.assignment import round_robin
from engine.routing.dialog_store import DialogStore
from engine.routing.rules import RuleSet, load_rules, rules_fingerprint


@dataclass(frozen=True, slots=True)
class DialogRequest:
    """A conversation that needs its dialog: the first message of it, or any later one."""

    portal_id: str
    line_id: str
    connector_id: str
    channel: str
    dialog_key: str
    customer_id: str


class Router:
    def __init__(self, store: DialogStore, rules_dir: Path, clock: Clock) -> None:
        self._store = store
        self._rules_dir = rules_dir
        self._clock = clock
        self.rules = RuleSet()
        self.rules_error: str | None = None
        self.reload_rules()
        if self.rules_error is not None:
            raise ConfigError(self.rules_error)

    def reload_rules(self, force: bool = False) -> bool:
        """Load the rules again if the files changed; a bad edit keeps the old rules.

        Returns True when a new snapshot took effect. The last error (or None) stays in
        ``rules_error`` for health checks and the admin API.
        """
        if not force and rules_fingerprint(self._rules_dir) == self.rules.fingerprint:
            return False
        try:
            self.rules = load_rules(self._rules_dir, self.rules.version + 1)
        except ConfigError as exc:
            self.rules_error = str(exc)
            return False
        self.rules_error = None
        return True

    def resolve(self, requests: Sequence[DialogRequest]) -> list[DialogInfo]:
        """The open dialog of every request, opening and assigning the missing ones."""
        store = self._store
        results: list[DialogInfo] = []
        store.begin()
        try:
            for request in requests:
                existing = store.open_dialog(
                    request.portal_id, request.connector_id, request.dialog_key
                )
                results.append(existing if existing is not None else self._open(request))
            store.commit()
        except BaseException:
            store.rollback()
            raise
        return results

    def _open(self, request: DialogRequest) -> DialogInfo:
        store = self._store
        cursor = store.cursor(request.portal_id, request.line_id)
        rules = self.rules.for_line(request.portal_id, request.line_id)
        operator_id, cursor = round_robin(rules, cursor)
        store.set_cursor(request.portal_id, request.line_id, cursor)
        dialog = DialogInfo(
            dialog_id=new_id("dlg"),
            portal_id=request.portal_id,
            line_id=request.line_id,
            connector_id=request.connector_id,
            channel=request.channel,
            dialog_key=request.dialog_key,
            customer_id=request.customer_id,
            operator_id=operator_id,
            opened_at=self._clock.now(),
        )
        store.insert_dialog(dialog)
        return dialog.model_copy(update={"is_new": True})

    def dialog(self, dialog_id: str) -> DialogInfo | None:
        return self._store.dialog(dialog_id)
