"""Choosing an operator for a new dialog: a pure function of rules and the line's cursor."""

from __future__ import annotations

from engine.routing.rules import LineRules


def round_robin(rules: LineRules | None, cursor: int) -> tuple[str | None, int]:
    """The next operator after ``cursor`` and the new cursor; no rules leaves it queued."""
    if rules is None or not rules.operators:
        return None, cursor
    operator = rules.operators[cursor % len(rules.operators)]
    return operator.id, (cursor + 1) % len(rules.operators)
