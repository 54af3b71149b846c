"""Instagram comments (the ``comments`` and ``live_comments`` webhook fields) as dialogs.

docs/channels/instagram.md, "Comments": each change is one new comment on a post, reel, story
or ad; a dialog is a comment thread (``comment:<top-level comment id>``); replies carry
``parent_id``. Instagram sends no edits or deletions of comments. The account's own comments
(the engine's replies come back this way) are ignored, and a comment on a boosted post that
Meta notifies twice is stored once (keyed by the comment id).
"""

from __future__ import annotations

from typing import Any

from channels.meta.comment_types import IgCommentValue
from channels.meta.comments import comment_message
from channels.meta.envelope import MetaEntry, read_event
from channels.meta.messaging import EntryReading
from engine.models import Customer, Route, TextContent

COMMENT_FIELDS = frozenset({"comments", "live_comments"})


class InstagramCommentReader:
    """Reads the comment changes of one Instagram professional account."""

    def __init__(self, route: Route, account_id: str) -> None:
        self._route = route
        self._account_id = account_id

    def read(self, entries: list[MetaEntry], received_at: float, into: EntryReading) -> None:
        for entry in entries:
            for change in entry.changes:
                field = change.get("field")
                if field not in COMMENT_FIELDS:
                    into.ignored.append(f"field:{field}")
                    continue
                self.read_comment(change.get("value"), entry.time or 0, received_at, into)

    def read_comment(self, data: Any, seconds: int, received_at: float, into: EntryReading) -> None:
        """One comment (from a webhook, or from the polling loop with its timestamp)."""
        value = read_event(IgCommentValue, data, "comments")
        if value is None or value.from_ is None:
            into.ignored.append("invalid_event:comments")
            return
        if value.from_.id == self._account_id:
            into.ignored.append("own_comment")
            return
        if not value.text:
            into.ignored.append("unsupported_content:empty")
            return
        if any(m.channel_event_id == value.id for m in into.messages):
            into.ignored.append("duplicate")
            return
        extras = _extras(value)
        author = value.from_
        into.messages.append(
            comment_message(
                self._route,
                account_id=self._account_id,
                action="new",
                thread_id=value.parent_id or value.id,
                comment_id=value.id,
                event_id=value.id,
                customer=Customer(
                    channel_user_id=author.id, username=author.username, name=author.name
                ),
                content=TextContent(text=value.text),
                sent_at_s=seconds,
                received_at=received_at,
                extras=extras,
                raw=data,
            )
        )


def _extras(value: IgCommentValue) -> dict[str, str]:
    media = value.media
    if media is None:
        return {}
    optional = {
        "media_id": media.id,
        "media_product_type": media.media_product_type,
        "ad_id": media.ad_id,
        "ad_title": media.ad_title,
    }
    return {key: item for key, item in optional.items() if item is not None}
