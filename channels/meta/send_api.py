"""The Messenger Send API, shared by Facebook Messenger and Instagram direct messages.

``POST {graph}/{account}/messages`` with ``{"recipient", "messaging_type", "message"}``
(docs/channels/facebook.md, "Send API"). A message carries text or one attachment, never
both: a picture's caption follows it as text. Attachments go by URL (Meta fetches them). A
long text is split on word boundaries within the product's limit. Meta has no idempotency
key, so a reply that failed part-way resumes at the failed part (``ResumeMemory``) and the
channels do not declare ``idempotent_sends``.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from channels.keyboards import reply_buttons
from channels.meta.graph_calls import answer_id, graph_post
from channels.partial_sends import ResumeMemory
from channels.text_split import Measure, split_text
from engine.errors import PermanentSendError
from engine.models import (
    DialogTarget,
    OutboundFile,
    OutboundImage,
    OutboundText,
    ReplyRequest,
    SentReceipt,
)

RESUME_MEMORY = 1024


def message_objects(
    channel: str, request: ReplyRequest, max_text: int, measure: Measure
) -> list[dict[str, Any]]:
    """The ``message`` object of each call, in order; the last carries the quick replies."""
    request, buttons = reply_buttons(channel, request)
    content = request.content
    if isinstance(content, OutboundText):
        parts = _texts(content.text, max_text, measure)
    elif isinstance(content, OutboundImage | OutboundFile):
        kind = "image" if isinstance(content, OutboundImage) else "file"
        attachment = {"type": kind, "payload": {"url": content.url, "is_reusable": True}}
        parts = [{"attachment": attachment}, *_texts(content.caption or "", max_text, measure)]
    else:  # pragma: no cover - the union is closed; a new kind must be rendered here
        raise PermanentSendError(f"{channel} cannot send {type(content).__name__}")
    if not parts:
        raise PermanentSendError("text is nothing but whitespace")
    parts[-1].update(buttons)
    return parts


def _texts(text: str, limit: int, measure: Measure) -> list[dict[str, Any]]:
    return [{"text": part} for part in split_text(text, limit, measure) if part.strip()]


class SendApi:
    """Sends one connector's replies through ``{graph}/{account_id}/messages``."""

    def __init__(self, url: str, token: str, what: str, timeout_s: float) -> None:
        self._url = url
        self._token = token
        self._what = what
        self._timeout_s = timeout_s
        self._resume = ResumeMemory(RESUME_MEMORY)

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        envelope: dict[str, Any],
        messages: list[dict[str, Any]],
    ) -> SentReceipt:
        """Each message with ``envelope`` (recipient, messaging type, tag), in order."""

        async def send_part(index: int) -> str:
            return await self.call(session, {**envelope, "message": messages[index]})

        return await self._resume.send(target, request, len(messages), send_part)

    async def call(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> str:
        """One Send API call; the ``message_id`` Meta gave it."""
        answer = await graph_post(
            session,
            self._url,
            token=self._token,
            body=body,
            what=self._what,
            timeout_s=self._timeout_s,
        )
        return answer_id(self._what, answer, "message_id")
