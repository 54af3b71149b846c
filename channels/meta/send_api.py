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
from channels.render import Capabilities, Part, TextPart, render
from channels.text_split import Measure
from engine.models import DialogTarget, ReplyRequest, SentReceipt

RESUME_MEMORY = 1024


def message_objects(
    channel: str, request: ReplyRequest, capabilities: Capabilities, measure: Measure
) -> list[dict[str, Any]]:
    """The ``message`` object of each call, in order (``channels.render``: long texts split,
    a caption after its media since ``max_caption_chars`` is 0); the last carries the quick
    replies."""
    request, buttons = reply_buttons(channel, request)
    parts = [_message(part) for part in render(request, capabilities, measure)]
    parts[-1].update(buttons)
    return parts


def _message(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"attachment": {"type": part.kind, "payload": {"url": part.url, "is_reusable": True}}}


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
