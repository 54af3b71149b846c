"""Polling an Instagram account's comments, beside (or instead of) the ``comments`` webhook.

Meta does not send comment webhooks for every case (media of accounts that went private,
apps without Advanced Access, outages), so an Instagram connector that reads comments may
also poll (docs/channels/instagram.md, "Polling"): its recent media
(``GET {graph}/{account}/media``), then each one's comments with their replies
(``GET {graph}/{media}/comments?fields=...,replies{...}``, following ``paging.next``).

The cursor is ``{"since": <unix s>, "ids": [...]}``: the newest comment time seen and the ids
seen at that second. A comment is new when it is later, or at that second and not among the
ids: a poll repeats none and skips none, whatever order Meta lists them in. Polled and
webhook comments share their keys (the comment id), so one seen both ways is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from channels.meta.graph_calls import graph_call
from channels.meta.instagram_comments import InstagramCommentReader
from channels.meta.messaging import EntryReading
from engine.errors import ValidationFailedError

COMMENT_FIELDS = "id,text,timestamp,from,parent_id"
MEDIA_FIELDS = "id,timestamp,media_product_type"
MAX_PAGES_PER_MEDIA = 10


@dataclass(frozen=True)
class Cursor:
    """Where the next poll starts."""

    since_s: int = 0
    ids: frozenset[str] = frozenset()

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = orjson.loads(text)
            return cls(int(data["since"]), frozenset(str(i) for i in data["ids"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ValidationFailedError(f"instagram comment cursor {text!r} is not ours") from None

    def encode(self) -> str:
        return orjson.dumps({"since": self.since_s, "ids": sorted(self.ids)}).decode()

    def is_new(self, seconds: int, comment_id: str) -> bool:
        return seconds > self.since_s or (seconds == self.since_s and comment_id not in self.ids)

    def after(self, seen: list[tuple[int, str]]) -> Cursor:
        """The cursor once ``seen`` (time, id) are stored."""
        if not seen:
            return self
        newest = max(seconds for seconds, _ in seen)
        at_newest = {cid for seconds, cid in seen if seconds == newest}
        if newest == self.since_s:
            at_newest |= self.ids
        return Cursor(newest, frozenset(at_newest))


@dataclass(frozen=True)
class PolledComments:
    reading: EntryReading
    cursor: str


class InstagramCommentPoller:
    """Fetches one account's new comments and normalizes them like the webhook's."""

    def __init__(
        self,
        reader: InstagramCommentReader,
        *,
        graph_api_url: str,
        account_id: str,
        token: str,
        media_limit: int,
        timeout_s: float,
    ) -> None:
        self._reader = reader
        self._graph = graph_api_url
        self._account_id = account_id
        self._token = token
        self._media_limit = media_limit
        self._timeout_s = timeout_s

    async def poll(
        self, session: aiohttp.ClientSession, cursor_text: str | None, received_at: float
    ) -> PolledComments:
        cursor = Cursor.decode(cursor_text)
        fresh: list[tuple[int, str, dict[str, Any]]] = []
        for media in await self._recent_media(session):
            async for comment in self._comments(session, media):
                seconds = instagram_time(comment.get("timestamp"))
                comment_id = str(comment.get("id", ""))
                if comment_id and cursor.is_new(seconds, comment_id):
                    fresh.append((seconds, comment_id, comment))
        fresh.sort(key=lambda item: (item[0], item[1]))
        reading = EntryReading()
        for seconds, _, comment in fresh:
            self._reader.read_comment(comment, seconds, received_at, reading)
        after = cursor.after([(seconds, cid) for seconds, cid, _ in fresh])
        return PolledComments(reading, after.encode())

    async def _recent_media(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        answer = await self._get(
            session,
            f"{self._account_id}/media",
            {"fields": MEDIA_FIELDS, "limit": str(self._media_limit)},
        )
        data = answer.get("data")
        return (
            [m for m in data if isinstance(m, dict) and m.get("id")]
            if isinstance(data, list)
            else []
        )

    async def _comments(self, session: aiohttp.ClientSession, media: dict[str, Any]) -> Any:
        """Each comment and reply of ``media``, in the shape of a ``comments`` webhook value."""
        params: dict[str, str] | None = {
            "fields": f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}",
            "limit": "50",
        }
        about = {"id": str(media["id"]), "media_product_type": media.get("media_product_type")}
        for _ in range(MAX_PAGES_PER_MEDIA):
            assert params is not None
            answer = await self._get(session, f"{media['id']}/comments", params)
            for comment in answer.get("data") or []:
                if not isinstance(comment, dict):
                    continue
                yield {**comment, "media": about}
                replies = comment.get("replies")
                for reply in replies.get("data", []) if isinstance(replies, dict) else []:
                    if isinstance(reply, dict):
                        yield {"parent_id": comment.get("id"), **reply, "media": about}
            after = _next_cursor(answer)
            if after is None:
                return
            params = {**params, "after": after}

    async def _get(
        self, session: aiohttp.ClientSession, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        return await graph_call(
            session,
            "GET",
            f"{self._graph}/{path}",
            token=self._token,
            params=params,
            what=f"instagram GET {path}",
            timeout_s=self._timeout_s,
        )


def instagram_time(value: object) -> int:
    """``2026-11-30T10:15:02+0000`` as Unix seconds; 0 for anything else."""
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except ValueError:
        return 0


def _next_cursor(answer: dict[str, Any]) -> str | None:
    paging = answer.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return str(after) if after else None
