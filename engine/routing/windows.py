"""Messaging windows: how long after the customer's last message a dialog takes replies.

A channel says, per connector and per dialog, what window its provider allows
(``Channel.reply_window_for``): Messenger's 24 hours, seven days under the ``HUMAN_AGENT``
tag, none for a public comment reply, one private reply per comment within seven days. The
router keeps each dialog's ``window_closes_at`` from it and refuses a reply after it
(docs/channels/contract.md, "Messaging windows").
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    """What a provider allows after the customer's last message (or an event it counts)."""

    seconds: float
    """Replies are taken this long after it."""
    what: str = "the messaging window"
    """The window in words, for the refusal the operator reads ("Messenger's 24-hour
    window", "the HUMAN_AGENT tag's 7 days")."""
    one_reply: bool = False
    """The window closes with the first reply accepted in it (Meta's private reply to a
    comment: one per comment); the customer's next message opens it again."""


def closes_at(window: ReplyWindow | None, customer_at: float) -> float | None:
    """When ``window`` closes if the customer acted at ``customer_at`` (None: no window)."""
    return None if window is None else customer_at + window.seconds
