"""The holder of the routing rules: the folder read into versioned snapshots.

A bad edit never takes effect: the snapshot in force stays, and the error is kept for
``/healthz``, the admin API and the logs until a good edit replaces it. Portal routers
fetch newer snapshots from the holder (STYLE.md §11).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ConfigError
from engine.routing.rules import RuleSet, load_rules, rules_fingerprint


class RulesHolder:
    def __init__(self, rules_dir: Path) -> None:
        self._rules_dir = rules_dir
        self.rules = RuleSet()
        self.error: str | None = None
        self._tried: tuple[tuple[str, str], ...] | None = None
        """The files as last read, good or bad: a bad edit is reported once, not per poll."""
        self.reload(force=True)
        if self.error is not None:
            raise ConfigError(self.error)

    def reload(self, force: bool = False) -> bool:
        """Load the rules again if the files changed; True when a new snapshot took effect."""
        try:
            fingerprint = rules_fingerprint(self._rules_dir)
        except OSError as exc:
            self.error = f"{self._rules_dir}: cannot read the rules folder: {exc}"
            self._tried = None  # read it again once it is back, even unchanged
            return False
        if not self._rules_dir.is_dir() and self.rules.lines:
            self.error = f"{self._rules_dir}: the rules folder is gone; the rules in force stay"
            self._tried = None
            return False
        if fingerprint == self._tried and not force:
            return False
        self._tried = fingerprint
        try:
            self.rules = load_rules(self._rules_dir, self.rules.version + 1)
        except ConfigError as exc:
            self.error = str(exc)
            return False
        self.error = None
        return True
