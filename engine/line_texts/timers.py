"""When the line speaks up on its own: reminders to a silent customer, auto-close, and KPI
alerts when an answer is late. Pure functions of the dialog's times and ``now``.

Nothing here sleeps or reads a clock: the dispatcher asks ``*_wake_at`` when to come back
(its timer wheel, an injected clock) and ``*_due`` what to do then. Each call answers one
step; the dispatcher applies it, records it in the dialog, and asks again.

* Silence: the operator replied at ``since`` and the customer has not written since. The
  follow-ups fall due ``after_s`` after ``since``, in order; auto-close after its
  ``after_s``. A customer's message ends the silence; the next reply starts a new one.
* Answer waits: a customer message has waited since ``since`` for an operator's answer.
  ``first`` when no operator has answered in the dialog yet: then ``first_answer_s`` is the
  limit, else ``next_answer_s``. One breach per wait.

``docs/line-messages.md``, "Reminders and auto-close" and "KPI alerts".
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events import KpiKind
from engine.line_texts.config import KpiConfig, MessagesConfig
from engine.models import Frozen


@dataclass(frozen=True)
class CustomerSilence:
    """The customer has not written since the reply at ``since``; ``follow_ups_sent`` of the
    line's reminders went out since then."""

    since: float
    follow_ups_sent: int = 0


@dataclass(frozen=True)
class FollowUpDue:
    """Send ``follow_ups[index]``, then record ``follow_ups_sent = index + 1``."""

    index: int


@dataclass(frozen=True)
class AutoCloseDue:
    """Close the dialog (with ``auto_close.text`` if set)."""


SilenceDue = FollowUpDue | AutoCloseDue


def silence_due(
    messages: MessagesConfig, silence: CustomerSilence, now: float
) -> SilenceDue | None:
    """What the silence calls for at ``now``, or ``None``.

    Auto-close wins over reminders still pending. When several reminders fell due at once
    (the engine was stopped), only the latest is sent: a customer gets one reminder, not a
    burst.
    """
    waited = now - silence.since
    if messages.auto_close is not None and waited >= messages.auto_close.after_s:
        return AutoCloseDue()
    due = [
        index
        for index, follow_up in enumerate(messages.follow_ups)
        if index >= silence.follow_ups_sent and waited >= follow_up.after_s
    ]
    return FollowUpDue(due[-1]) if due else None


def silence_wake_at(messages: MessagesConfig, silence: CustomerSilence) -> float | None:
    """When the silence next calls for something, or ``None`` if it never will."""
    delays = [
        follow_up.after_s
        for index, follow_up in enumerate(messages.follow_ups)
        if index >= silence.follow_ups_sent
    ]
    if messages.auto_close is not None:
        delays.append(messages.auto_close.after_s)
    return silence.since + min(delays) if delays else None


@dataclass(frozen=True)
class AnswerWait:
    """A customer has waited since ``since`` for an answer; ``first`` when no operator has
    answered the dialog yet; ``alerted`` once the breach was reported."""

    since: float
    first: bool
    alerted: bool = False


class KpiBreach(Frozen):
    """An answer later than the line's KPI: what the portal is told."""

    kind: KpiKind
    limit_s: float
    waiting_since: float
    waited_s: float


def _limit(kpi: KpiConfig, wait: AnswerWait) -> tuple[KpiKind, float | None]:
    if wait.first:
        return "first_answer", kpi.first_answer_s
    return "next_answer", kpi.next_answer_s


def kpi_breach(kpi: KpiConfig | None, wait: AnswerWait, now: float) -> KpiBreach | None:
    """The breach of ``wait`` at ``now``, once: ``None`` when in time or already alerted."""
    if kpi is None or wait.alerted:
        return None
    kind, limit = _limit(kpi, wait)
    if limit is None or now - wait.since < limit:
        return None
    return KpiBreach(kind=kind, limit_s=limit, waiting_since=wait.since, waited_s=now - wait.since)


def kpi_wake_at(kpi: KpiConfig | None, wait: AnswerWait) -> float | None:
    """When ``wait`` breaches the KPI, or ``None`` if it cannot (no limit, already alerted)."""
    if kpi is None or wait.alerted:
        return None
    _, limit = _limit(kpi, wait)
    return wait.since + limit if limit is not None else None
