"""Dialog events for statistics tests, their data made by the engine's own event models
(``engine.events``), so a test cannot drift from what the router writes."""

from __future__ import annotations

from typing import Any

from engine.events import (
    Decline,
    DialogAnswered,
    DialogAssigned,
    DialogClosed,
    DialogQueued,
    DialogReturned,
    DialogTransferred,
    ReplySent,
)
from engine.models import Frozen
from engine.stats.events import DialogEvent


def _event(
    kind: str,
    at: float,
    line: str,
    operator: str | None,
    data: Frozen | dict[str, Any],
    dialog: str,
) -> DialogEvent:
    dumped = data.model_dump(mode="json") if isinstance(data, Frozen) else data
    return DialogEvent(dialog, kind, at, line, operator, dumped)


def queued(
    at: float, line: str = "support", reason: str = "new", dialog: str = "d1"
) -> DialogEvent:
    data = DialogQueued(reason=reason, position=1)  # type: ignore[arg-type]
    return _event("dialog.queued", at, line, None, data, dialog)


def assigned(at: float, operator: str, line: str = "support", dialog: str = "d1") -> DialogEvent:
    data = DialogAssigned(operator_id=operator, via="direct", decision_id="dec_1")
    return _event("dialog.assigned", at, line, operator, data, dialog)


def answered(at: float, operator: str, line: str = "support", dialog: str = "d1") -> DialogEvent:
    data = DialogAnswered(operator_id=operator)
    return _event("dialog.answered", at, line, operator, data, dialog)


def returned(
    at: float, operator: str, reason: str = "no_answer", line: str = "support", dialog: str = "d1"
) -> DialogEvent:
    data = DialogReturned(operator_id=operator, reason=reason)  # type: ignore[arg-type]
    return _event("dialog.returned", at, line, None, data, dialog)


def transferred(
    at: float,
    from_line: str,
    to_line: str,
    from_operator: str | None,
    to_operator: str | None = None,
    dialog: str = "d1",
) -> DialogEvent:
    data = DialogTransferred(
        from_line=from_line,
        to_line=to_line,
        reason="operator",
        from_operator_id=from_operator,
        to_operator_id=to_operator,
        by=from_operator,
    )
    return _event("dialog.transferred", at, to_line, None, data, dialog)


def closed(
    at: float,
    reason: str,
    operator: str | None,
    line: str = "support",
    spam: bool | None = None,
    dialog: str = "d1",
) -> DialogEvent:
    decline = None if spam is None else Decline(spam=spam, customer_told=False, blocked=False)
    data = DialogClosed(
        reason=reason,  # type: ignore[arg-type]
        operator_id=operator,
        closed_by=operator,
        decline=decline,
    )
    return _event("dialog.closed", at, line, operator, data, dialog)


def message(at: float, dialog: str = "d1") -> DialogEvent:
    return DialogEvent(dialog, "message.received", at, "", None, {})


def reply(
    at: float,
    operator: str | None,
    line: str = "support",
    origin: str = "operator",
    holder: str | None = None,
    dialog: str = "d1",
) -> DialogEvent:
    """A reply that reached the customer; ``operator`` named in the reply, ``holder`` the
    dialog's operator in the stamp."""
    data: dict[str, Any] = ReplySent(
        reply_id="rpl_1",
        client_id=None,
        origin=origin,
        channel_message_ids=("1",),  # type: ignore[arg-type]
    ).model_dump(mode="json")
    if operator is not None:
        data["operator_id"] = operator
    return _event("reply.sent", at, line, holder, data, dialog)


def rated(
    at: float, data: dict[str, Any], operator: str | None, line: str = "support", dialog: str = "d1"
) -> DialogEvent:
    """``dialog.rated`` is being added by another change: its data is written as a dict."""
    return _event("dialog.rated", at, line, operator, data, dialog)
