"""The part of a dialog event that statistics read, from the history or a routing step.

Statistics read the same events a portal receives (``engine.events``): the dialog's stamp
says which line the dialog was on and who held it at that point of its stream, ``data``
what happened. Only the kinds in ``STATS_KINDS`` matter; the rest are never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

STATS_KINDS = (
    "dialog.queued",
    "dialog.assigned",
    "dialog.answered",
    "dialog.returned",
    "dialog.transferred",
    "dialog.closed",
    "dialog.rated",
    "message.received",
    "reply.sent",
)
"""Event types a figure is computed from (docs/statistics.md, "Definitions")."""

CUSTOMER_MESSAGE = "message.received"


@dataclass(frozen=True, slots=True)
class DialogEvent:
    """One event of a dialog's stream as statistics see it.

    ``line_id`` and ``operator_id`` come from the event's dialog stamp (empty and None for a
    customer's message, which statistics read only for its time). For ``reply.sent``,
    ``data["operator_id"]`` is the operator who sent the reply, when the reply named one.
    """

    dialog_id: str
    kind: str
    at: float
    line_id: str
    operator_id: str | None
    data: Mapping[str, Any]


def from_history(
    dialog_id: str,
    kind: str,
    occurred_at: float,
    dialog_json: bytes,
    payload: bytes | None,
    reply_json: bytes | None,
) -> DialogEvent:
    """An event as the history keeps it (``engine.store.sqlite_routing``, ``history``)."""
    if kind == CUSTOMER_MESSAGE:  # only its time counts: skip parsing a whole message
        return DialogEvent(dialog_id, kind, occurred_at, "", None, {})
    stamp = orjson.loads(dialog_json)
    data: dict[str, Any] = orjson.loads(payload) if payload else {}
    return DialogEvent(
        dialog_id,
        kind,
        occurred_at,
        stamp["line_id"],
        stamp.get("operator_id"),
        with_reply_operator(data, reply_json),
    )


def with_reply_operator(data: dict[str, Any], reply_json: bytes | None) -> dict[str, Any]:
    """A reply outcome's data with the operator the stored reply names, if any."""
    if reply_json is None:
        return data
    operator_id = orjson.loads(reply_json).get("operator_id")
    return {**data, "operator_id": operator_id} if operator_id else data
