"""Invariants of the figures over generated dialog lifecycles (hypothesis): every received
dialog is answered, missed or still open; lines and operators add up to the portal; a range
split in two adds up to the whole (docs/statistics.md, "How the figures add up")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stats.events import DialogEvent
from engine.stats.figures import Figures, Selection
from engine.stats.timeline import facts_of
from tests.engine.stats.events import (
    answered,
    assigned,
    closed,
    message,
    queued,
    rated,
    reply,
    returned,
    transferred,
)

LINES = ("support", "sales")
OPERATORS = ("anna", "boris", "chen")
CLOSE_REASONS = ("finished", "declined", "operator_unavailable", "auto_closed")


@dataclass
class Generated:
    """One dialog's events as the router would write them, and its truth at the end."""

    events: list[DialogEvent] = field(default_factory=list)
    open_unanswered: int = 0


@st.composite
def lifecycle(draw: st.DrawFn, dialog: str) -> Generated:
    """A random walk through the lifecycle (docs/routing.md, "The dialog lifecycle")."""
    made = Generated()
    t = float(draw(st.integers(0, 5 * 86400)))
    line = draw(st.sampled_from(LINES))
    state, operator, episode_answered = "waiting", None, False
    out = made.events
    out += [queued(t, line, dialog=dialog), message(t, dialog=dialog)]
    for _ in range(draw(st.integers(0, 14))):
        t += draw(st.integers(0, 4000))
        if state == "closed":
            action = draw(st.sampled_from(["reopen", "rate", "stop"]))
        else:
            options = ["close", "transfer_line", "message"]
            options += ["assign"] if state == "waiting" else ["answer", "return", "to_operator"]
            action = draw(st.sampled_from(options))
        if action == "stop":
            break
        if action == "reopen":
            state, operator, episode_answered = "waiting", None, False
            out += [queued(t, line, "reopened", dialog), message(t, dialog)]
        elif action == "rate":
            out.append(rated(t, {"score": draw(st.integers(1, 5))}, operator, line, dialog))
        elif action == "message":
            out.append(message(t, dialog))
        elif action == "assign":
            operator, state = draw(st.sampled_from(OPERATORS)), "assigned"
            out.append(assigned(t, operator, line, dialog))
        elif action == "answer":
            assert operator is not None
            if state == "assigned":
                out.append(answered(t, operator, line, dialog))
                state, episode_answered = "answered", True
            out.append(reply(t + draw(st.integers(0, 30)), operator, line, dialog=dialog))
        elif action == "return":
            assert operator is not None
            out.append(returned(t, operator, "no_answer", line, dialog))
            state, operator = "waiting", None
        elif action == "to_operator":
            target = draw(st.sampled_from([o for o in OPERATORS if o != operator]))
            out.append(transferred(t, line, line, operator, target, dialog))
            out.append(assigned(t, target, line, dialog))
            state, operator = "assigned", target
        elif action == "transfer_line":
            target = next(other for other in LINES if other != line)
            out.append(transferred(t, line, target, operator, dialog=dialog))
            out.append(queued(t, target, "transferred", dialog))
            state, operator, line = "waiting", None, target
        else:
            reason = draw(st.sampled_from(CLOSE_REASONS))
            spam = draw(st.booleans()) if reason == "declined" else None
            out.append(closed(t, reason, operator, line, spam, dialog))
            state = "closed"
    if state != "closed" and not episode_answered:
        made.open_unanswered = 1
    return made


portals = st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True).flatmap(
    lambda ids: st.tuples(*(lifecycle(f"d{i}") for i in ids))
)
END = 30 * 86400.0


def figures(dialogs: tuple[Generated, ...], selection: Selection) -> dict[str, Any]:
    folded = Figures(selection)
    for dialog in dialogs:
        folded.add(facts_of(dialog.events))
    return folded.as_json()


def counts(body: dict[str, Any]) -> dict[str, float]:
    """Every count of an answer, flattened (times and averages left out)."""
    flat: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif isinstance(value, int):
            flat[prefix] = value

    walk("dialogs", body["dialogs"])
    for part in ("first_answer_s", "further_answer_s", "ratings"):
        flat[f"{part}.count"] = body[part]["count"]
    for bucket in body["load"]:
        for key, value in bucket.items():
            if key != "start":
                flat[f"load.{key}"] = flat.get(f"load.{key}", 0) + value
    return flat


@settings(max_examples=300, deadline=None)
@given(portals)
def test_every_received_dialog_is_answered_missed_or_still_open(
    dialogs: tuple[Generated, ...],
) -> None:
    body = figures(dialogs, Selection(0, END))
    d = body["dialogs"]
    still_open = sum(dialog.open_unanswered for dialog in dialogs)
    assert d["received"] == d["answered"] + d["missed"]["total"] + still_open
    assert body["first_answer_s"]["count"] == d["answered"]
    assert d["transferred_out"] == d["transferred_in"]
    for reason, missed in d["missed"]["by_reason"].items():
        assert missed <= d["closed"]["by_reason"][reason]
    assert d["declined"]["total"] == d["closed"]["by_reason"]["declined"]
    assert sum(b["received"] for b in body["load"]) == d["received"]


@settings(max_examples=200, deadline=None)
@given(portals)
def test_lines_and_operators_add_up_to_the_portal(dialogs: tuple[Generated, ...]) -> None:
    portal = counts(figures(dialogs, Selection(0, END)))
    by_line = [counts(figures(dialogs, Selection(0, END, line_id=line))) for line in LINES]
    assert {key: sum(c[key] for c in by_line) for key in portal} == portal
    by_operator = [counts(figures(dialogs, Selection(0, END, operator_id=o))) for o in OPERATORS]
    # answers always have an operator: the operators' answers are the portal's
    for key in ("dialogs.answered", "first_answer_s.count", "further_answer_s.count"):
        assert sum(c[key] for c in by_operator) == portal[key]


@settings(max_examples=200, deadline=None)
@given(portals, st.integers(1, int(END) - 1))
def test_a_range_split_in_two_adds_up_to_the_whole(
    dialogs: tuple[Generated, ...], split: int
) -> None:
    whole = counts(figures(dialogs, Selection(0, END)))
    first = counts(figures(dialogs, Selection(0, split)))
    second = counts(figures(dialogs, Selection(split, END)))
    assert {key: first[key] + second[key] for key in whole} == whole
