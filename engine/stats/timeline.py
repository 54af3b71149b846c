"""One dialog's events, in stream order, turned into the facts statistics count.

A dialog lives in **episodes**: one opens when the dialog is queued as ``new`` or
``reopened`` and ends when it closes (docs/routing.md, "The dialog lifecycle"). What a fact
means often depends on the episode's past: an answer is the first one only once per
episode, a close is a miss when nothing answered before it, a reply ends the customer's
turn that began with their first unanswered message. ``Timeline`` keeps exactly that past.

Each fact names the line and operator it counts for, as docs/statistics.md,
"Attribution", defines: the line and the operator of the moment it happened (a transfer
counts out for the side it left and in for the side it reached). A timeline that did not
see its episode begin (the live counters after a restart) produces only the facts that
need no past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.stats.events import DialogEvent


@dataclass(frozen=True, slots=True)
class Fact:
    """Something statistics count, at a time, for a line and maybe an operator.

    ``kind`` is one of ``FACT_KINDS``; ``detail`` a reason or a variant of it; ``value``
    the seconds of an answer or a rating's score.
    """

    kind: str
    at: float
    line_id: str
    operator_id: str | None
    detail: str = ""
    value: float | None = None


FACT_KINDS = (
    "received",  # detail: new, reopened
    "assigned",  # detail: via
    "answered",  # value: seconds from the episode's start (the first answer)
    "replied",  # value: seconds from the customer's turn to a later operator reply
    "transferred_out",  # detail: to_line, to_operator
    "transferred_in",  # detail: to_line, to_operator
    "returned",  # detail: reason
    "closed",  # detail: reason
    "missed",  # detail: the close's reason
    "declined",  # detail: spam, refused
    "rated",  # value: the score, if numeric
)


@dataclass(slots=True)
class Timeline:
    """The past of one dialog's current episode, as far as statistics need it."""

    known: bool = False
    """The timeline saw the current episode begin."""
    opened_at: float = 0.0
    answered: bool = False
    first_reply_pending: bool = False
    """The first answer was given; its reply has not reached the customer yet."""
    turn_since: float | None = None
    """The customer's first message since an operator last replied to them."""

    def feed(self, event: DialogEvent) -> list[Fact]:
        """The facts this event makes, and the timeline moved past it."""
        step = _STEPS.get(event.kind)
        return step(self, event) if step is not None else []

    def _queued(self, event: DialogEvent) -> list[Fact]:
        reason = event.data.get("reason")
        if reason not in ("new", "reopened"):
            return []  # joined another line's queue: the transfer's facts say so
        self._begin(known=True, at=event.at)
        return [Fact("received", event.at, event.line_id, None, reason)]

    def _begin(self, known: bool, at: float) -> None:
        """A new episode (``known``), or none after a close."""
        self.known, self.opened_at, self.answered = known, at, False
        self.first_reply_pending, self.turn_since = False, None

    def _assigned(self, event: DialogEvent) -> list[Fact]:
        operator_id = event.data.get("operator_id")
        return [Fact("assigned", event.at, event.line_id, operator_id, event.data.get("via", ""))]

    def _answered(self, event: DialogEvent) -> list[Fact]:
        if not self.known or self.answered:
            return []  # a later operator's first reply: the dialog was answered already
        self.answered = self.first_reply_pending = True
        seconds = max(0.0, event.at - self.opened_at)
        operator_id = event.data.get("operator_id")
        return [Fact("answered", event.at, event.line_id, operator_id, value=seconds)]

    def _returned(self, event: DialogEvent) -> list[Fact]:
        data = event.data
        return [Fact("returned", event.at, event.line_id, data.get("operator_id"), data["reason"])]

    def _transferred(self, event: DialogEvent) -> list[Fact]:
        data = event.data
        to_operator = data.get("to_operator_id")
        how = "to_operator" if to_operator else "to_line"
        return [
            Fact("transferred_out", event.at, data["from_line"], data.get("from_operator_id"), how),
            Fact("transferred_in", event.at, data["to_line"], to_operator, how),
        ]

    def _closed(self, event: DialogEvent) -> list[Fact]:
        data = event.data
        reason = data["reason"]
        operator_id = data.get("operator_id")
        facts = [Fact("closed", event.at, event.line_id, operator_id, reason)]
        if reason == "declined":
            spam = bool((data.get("decline") or {}).get("spam"))
            how = "spam" if spam else "refused"
            facts.append(Fact("declined", event.at, event.line_id, operator_id, how))
        if self.known and not self.answered:
            facts.append(Fact("missed", event.at, event.line_id, operator_id, reason))
        self._begin(known=False, at=0.0)  # the episode is over
        return facts

    def _rated(self, event: DialogEvent) -> list[Fact]:
        # dialog.rated is another change's (docs/statistics.md, "Ratings"): read defensively.
        score = event.data.get("score")
        value = None
        if isinstance(score, int | float) and not isinstance(score, bool):
            value = float(score)
        operator_id = event.data.get("operator_id") or event.operator_id
        return [Fact("rated", event.at, event.line_id, operator_id, value=value)]

    def _message(self, event: DialogEvent) -> list[Fact]:
        if self.known and self.turn_since is None:
            self.turn_since = event.at
        return []

    def _reply_sent(self, event: DialogEvent) -> list[Fact]:
        if event.data.get("origin") != "operator":
            return []  # the line's own texts answer nobody
        since, self.turn_since = self.turn_since, None
        if self.first_reply_pending:
            self.first_reply_pending = False  # the first answer's reply: timed as answered
            return []
        if not self.answered or since is None:
            return []
        operator_id = event.data.get("operator_id") or event.operator_id
        seconds = max(0.0, event.at - since)
        return [Fact("replied", event.at, event.line_id, operator_id, value=seconds)]


_STEPS: dict[str, Callable[[Timeline, DialogEvent], list[Fact]]] = {
    "dialog.queued": Timeline._queued,
    "dialog.assigned": Timeline._assigned,
    "dialog.answered": Timeline._answered,
    "dialog.returned": Timeline._returned,
    "dialog.transferred": Timeline._transferred,
    "dialog.closed": Timeline._closed,
    "dialog.rated": Timeline._rated,
    "message.received": Timeline._message,
    "reply.sent": Timeline._reply_sent,
}


def facts_of(events: list[DialogEvent]) -> list[Fact]:
    """Every fact of one dialog's events, given in stream order from its first."""
    timeline = Timeline()
    return [fact for event in events for fact in timeline.feed(event)]
