"""Comments as dialogs, shared by Facebook page comments and Instagram comments.

One dialog per comment thread (docs/channels/facebook.md, "Page comments"): a top-level
comment opens it, replies to it join it. The dialog key is ``comment:<top-level comment
id>``, so the channel knows a reply there goes to the comment, not to a Messenger thread.
The account's own comments (the replies the engine sends come back this way) are ignored.
Each comment's address (docs/channels/contract.md, "Addressing") names the account, the
thread and the comment itself: the latest one is what a private reply answers.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Literal

from engine.errors import PermanentSendError
from engine.ids import inbound_event_id
from engine.models import (
    Content,
    Customer,
    DialogTarget,
    InboundAction,
    InboundMessage,
    ReplyRequest,
    Route,
)

DIALOG_PREFIX = "comment:"


def comment_dialog_key(thread_comment_id: str) -> str:
    return f"{DIALOG_PREFIX}{thread_comment_id}"


def thread_of(dialog_key: str) -> str | None:
    """The top-level comment of a comment dialog, or ``None`` for a messaging dialog."""
    return dialog_key.removeprefix(DIALOG_PREFIX) if dialog_key.startswith(DIALOG_PREFIX) else None


def comment_order_key(seconds: int, comment_id: str) -> int:
    """Comments carry only seconds: ties broken by 16 bits of the id's CRC (deterministic)."""
    return (seconds << 16) | (zlib.crc32(comment_id.encode()) & 0xFFFF)


def text_digest(text: str | None) -> str:
    """An edit has no id of its own: the same edit redelivered has the same text."""
    return hashlib.blake2b((text or "").encode(), digest_size=6).hexdigest()


def comment_address(
    target: DialogTarget, request: ReplyRequest, mode: Literal["public", "private"]
) -> str:
    """The comment a reply answers: the one the operator quotes; else, privately, the
    customer's latest comment (Meta takes one private reply per comment, within 7 days of
    it: ``address.comment_id``), publicly the thread's top-level comment. A dialog stored
    before the engine kept addresses has only its key: the thread."""
    if request.reply_to_channel_message_id is not None:
        return request.reply_to_channel_message_id
    address = target.address
    chosen = address.get("comment_id") if mode == "private" else address.get("thread_id")
    thread = thread_of(target.dialog_key)
    found = chosen or thread
    if found is None:
        raise PermanentSendError(f"dialog {target.dialog_id!r} is no comment thread")
    return found


def comment_message(
    route: Route,
    *,
    account_id: str,
    action: InboundAction,
    thread_id: str,
    comment_id: str,
    event_id: str,
    customer: Customer,
    content: Content | None,
    sent_at_s: int,
    received_at: float,
    extras: dict[str, str],
    raw: dict[str, Any],
) -> InboundMessage:
    return InboundMessage(
        id=inbound_event_id(route.connector_id, event_id),
        route=route,
        action=action,
        dialog_key=comment_dialog_key(thread_id),
        customer=customer,
        content=content,
        reply_to_channel_message_id=thread_id if thread_id != comment_id else None,
        channel_message_id=comment_id,
        channel_event_id=event_id,
        order_key=comment_order_key(sent_at_s, comment_id),
        sent_at=float(sent_at_s),
        edited_at=float(sent_at_s) if action == "edit" else None,
        received_at=received_at,
        extras=extras,
        raw=raw,
        address={"account_id": account_id, "thread_id": thread_id, "comment_id": comment_id},
    )
