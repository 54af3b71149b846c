"""Facebook ``feed`` changes that are not customer messages, as channel events in the comment
thread's dialog (docs/channels/facebook.md, "Page comments").

* ``comment`` + ``hide`` / ``unhide``: the page hid (a moderator, or Meta's filter) or
  showed again a customer's comment: ``hidden`` / ``unhidden`` naming it. Meta gives the
  event no id or time of its own, so it is keyed by the comment, the verb and the
  notification's ``entry.time`` (a redelivery repeats them; hiding twice does not).
* ``reaction`` + ``add`` / ``edit`` / ``remove`` on a comment: the customer reacted to a
  comment in the thread (the engine's reply, usually): ``reaction`` with the emoji of
  ``reaction_type`` (its name in ``extras.reaction_name``), ``null`` when removed.
  A reaction to the post itself belongs to no comment thread, so to no dialog (a channel
  event never opens one): ignored ``feed:reaction:post``. The page's own reactions are
  ignored (``own_reaction``).
"""

from __future__ import annotations

from typing import Any

from channels.meta.comment_types import FeedValue
from channels.meta.comments import comment_dialog_key
from channels.meta.envelope import MetaEntry
from channels.meta.events import channel_event
from channels.meta.messaging import EntryReading
from engine.models import ChannelEvent, ChannelEventKind, Route

REACTION_EMOJI = {
    "like": "👍",
    "love": "❤️",
    "care": "🤗",
    "haha": "😆",
    "wow": "😮",
    "sad": "😢",
    "angry": "😡",
}
"""Facebook's reaction types as the emoji the portal shows; another type goes by its name."""
_VISIBILITY: dict[str, ChannelEventKind] = {"hide": "hidden", "unhide": "unhidden"}


def thread_of_comment(value: FeedValue) -> str | None:
    """The top-level comment of the thread ``value.comment_id`` is in: itself when its parent
    is the post, else its parent comment."""
    if value.comment_id is None:
        return None
    top_level = value.parent_id is None or value.parent_id == value.post_id
    return value.comment_id if top_level else str(value.parent_id)


class FeedEvents:
    """Reads one page's comment visibility changes and reactions."""

    def __init__(self, route: Route, page_id: str) -> None:
        self._route = route
        self._page_id = page_id

    def visibility(
        self,
        entry: MetaEntry,
        value: FeedValue,
        data: dict[str, Any],
        received_at: float,
        into: EntryReading,
    ) -> None:
        """``hide`` / ``unhide`` of a comment."""
        kind = _VISIBILITY[value.verb]
        thread = thread_of_comment(value)
        author = value.from_
        if thread is None or value.comment_id is None or author is None:
            into.ignored.append("invalid_event:feed")
            return
        into.events.append(
            self._about_comment(
                kind,
                author.id,
                thread,
                value.comment_id,
                event_id=f"{value.comment_id}:{value.verb}:{entry.time or 0}",
                occurred_at=float(entry.time or value.created_time or received_at),
                received_at=received_at,
                raw=data,
            )
        )

    def reaction(
        self,
        entry: MetaEntry,
        value: FeedValue,
        data: dict[str, Any],
        received_at: float,
        into: EntryReading,
    ) -> None:
        """A reaction to a comment, added, changed or removed."""
        author = value.from_
        thread = thread_of_comment(value)
        if author is None:
            into.ignored.append("invalid_event:feed")
            return
        if thread is None or value.comment_id is None:
            into.ignored.append("feed:reaction:post")
            return
        if author.id == self._page_id:
            into.ignored.append("own_reaction")
            return
        name = value.reaction_type
        removed = value.verb == "remove"
        shown = None if removed else REACTION_EMOJI.get(name or "", name)
        seconds = value.created_time or entry.time or 0
        into.events.append(
            self._about_comment(
                "reaction",
                author.id,
                thread,
                value.comment_id,
                event_id=f"reaction:{author.id}:{value.comment_id}:{value.verb}:{seconds}",
                occurred_at=float(seconds),
                received_at=received_at,
                raw=data,
                reaction=shown,
                extras={"reaction_name": name} if name else {},
            )
        )

    def _about_comment(
        self,
        kind: ChannelEventKind,
        customer_id: str,
        thread: str,
        comment_id: str,
        **fields: Any,
    ) -> ChannelEvent:
        """An event naming one comment, in its thread's dialog."""
        return channel_event(
            self._route,
            kind,
            customer_id=customer_id,
            dialog_key=comment_dialog_key(thread),
            message_ids=(comment_id,),
            **fields,
        )
