"""Facebook page comments (the ``feed`` webhook field): reading them and replying.

``item`` x ``verb`` (docs/channels/facebook.md, "Page comments"): a comment ``add`` is a
customer message, ``edited`` an edit, ``remove`` a deletion; ``hide``/``unhide`` and
reactions to comments are channel events in the thread's dialog
(``channels.meta.feed_events``); everything about posts, reactions to posts and shares
creates nothing and is ignored with a reason. A dialog is a comment thread; the page's own
comments (``from.id`` is the page) are ignored. De-duplicated on the comment id (an edit
on the id and a digest of its text).

Replies: public, as a reply to the thread's comment (``POST /{comment-id}/comments``); or,
when the connector says so, private, as Messenger's one private reply to the customer's
comment (``recipient.comment_id``), which Meta allows once per comment within 7 days.
"""

from __future__ import annotations

from typing import Any

from channels.meta.comment_types import FeedValue
from channels.meta.comments import comment_message, text_digest
from channels.meta.envelope import MetaEntry, read_event
from channels.meta.feed_events import FeedEvents, thread_of_comment
from channels.meta.messaging import EntryReading
from engine.models import (
    Content,
    Customer,
    FileRef,
    ImageContent,
    InboundAction,
    Route,
    TextContent,
    VideoContent,
)

_ACTIONS: dict[str, InboundAction] = {"add": "new", "edited": "edit", "remove": "delete"}


class FeedReader:
    """Reads the ``feed`` changes of one page."""

    def __init__(self, route: Route, page_id: str) -> None:
        self._route = route
        self._page_id = page_id
        self._events = FeedEvents(route, page_id)

    def read(self, entries: list[MetaEntry], received_at: float, into: EntryReading) -> None:
        for entry in entries:
            for change in entry.changes:
                if change.get("field") != "feed":
                    into.ignored.append(f"field:{change.get('field')}")
                    continue
                self._read_change(entry, change.get("value"), received_at, into)

    def _read_change(
        self, entry: MetaEntry, data: Any, received_at: float, into: EntryReading
    ) -> None:
        value = read_event(FeedValue, data, "feed")
        if value is None or not isinstance(data, dict):
            into.ignored.append("invalid_event:feed")
            return
        if value.item == "reaction" and value.verb in ("add", "edit", "remove"):
            self._events.reaction(entry, value, data, received_at, into)
            return
        if value.item != "comment":
            into.ignored.append(f"feed:{value.item}:{value.verb}")
            return
        if value.verb in ("hide", "unhide"):
            self._events.visibility(entry, value, data, received_at, into)
            return
        action = _ACTIONS.get(value.verb)
        if action is None:
            into.ignored.append(f"comment:{value.verb}")
            return
        author = value.from_
        if value.comment_id is None or author is None:
            into.ignored.append("invalid_event:feed")
            return
        if author.id == self._page_id:
            into.ignored.append("own_comment")
            return
        content = _content(value) if action != "delete" else None
        if action != "delete" and content is None:
            into.ignored.append("unsupported_content:empty")
            return
        thread = thread_of_comment(value)
        assert thread is not None  # comment_id is set
        event_id = value.comment_id
        if action == "edit":
            event_id = f"{value.comment_id}#edit:{text_digest(value.message)}"
        elif action == "delete":
            event_id = f"{value.comment_id}#removed"
        extras = {k: v for k, v in _extras(value).items() if v is not None}
        seconds = value.created_time or (entry.time or 0)
        into.messages.append(
            comment_message(
                self._route,
                account_id=self._page_id,
                action=action,
                thread_id=thread,
                comment_id=value.comment_id,
                event_id=event_id,
                customer=Customer(channel_user_id=author.id, name=author.name),
                content=content,
                sent_at_s=seconds,
                received_at=received_at,
                extras=extras,
                raw=data,
            )
        )


def _content(value: FeedValue) -> Content | None:
    if value.photo:
        return ImageContent(
            file=FileRef(file_id=value.photo, url=value.photo), caption=value.message
        )
    if value.video:
        return VideoContent(
            file=FileRef(file_id=value.video, url=value.video), caption=value.message
        )
    if value.message:
        return TextContent(text=value.message)
    return None


def _extras(value: FeedValue) -> dict[str, str | None]:
    post = value.post
    return {
        "post_id": value.post_id,
        "post_url": post.permalink_url if post is not None else None,
    }
