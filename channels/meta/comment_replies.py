"""Replies in a comment dialog: a public reply to a comment, or Messenger's private reply.

Public (docs/channels/facebook.md, "Comment replies"; instagram.md, "Replies"): Facebook
``POST /{comment-id}/comments`` with ``message`` (and ``attachment_url`` for a picture),
Instagram ``POST /{comment-id}/replies`` with ``message`` (text only: a picture or file goes
as its link). Both answer ``{"id": <new comment id>}``. Rendered by ``channels.render``: a
long text becomes several comments, split on word boundaries; buttons become numbered
options (comments have none).

Private: one Send API message to the comment's author, ``{"recipient": {"comment_id"}}``;
Meta takes one per comment (within 7 days), so a private reply is a single message: a text
too long for one is refused rather than cut, and a second private reply to the same comment
fails with Meta's code 10900 (permanent, with its meaning).
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp

from channels.meta.graph_calls import answer_id, graph_post
from channels.meta.send_api import SendApi
from channels.partial_sends import ResumeMemory
from channels.render import Capabilities, Part, TextPart, render
from channels.text_split import Measure, code_points
from engine.buttons.text_fallback import numbered_text
from engine.errors import PermanentSendError
from engine.models import DialogTarget, OutboundText, ReplyRequest, SentReceipt

ReplyMode = Literal["public", "private"]
RESUME_MEMORY = 1024
PRIVATE_UNSPLIT = 1_000_000
"""Rendered unsplit: a private reply is one message, refused when too long, never cut."""


def _without_keyboard(request: ReplyRequest) -> ReplyRequest:
    """Comments show no buttons: a keyboard becomes numbered options in the text."""
    keyboard = request.keyboard
    if keyboard is None or not isinstance(request.content, OutboundText):
        return request
    text = OutboundText(text=numbered_text(request.content.text, keyboard))
    return request.model_copy(update={"content": text, "keyboard": None})


class CommentReplies:
    """Public replies through ``{graph}/{comment}/{edge}``, private ones through ``send_api``."""

    def __init__(
        self,
        *,
        graph_api_url: str,
        token: str,
        edge: Literal["comments", "replies"],
        capabilities: Capabilities,
        send_api: SendApi,
        max_private_text: int,
        private_measure: Measure = code_points,
        timeout_s: float,
        what: str,
    ) -> None:
        self._graph = graph_api_url
        self._token = token
        self._edge = edge
        self._capabilities = capabilities
        self._send_api = send_api
        self._max_private_text = max_private_text
        self._private_measure = private_measure
        self._timeout_s = timeout_s
        self._what = what
        self._resume = ResumeMemory(RESUME_MEMORY)

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        comment_id: str,
        mode: ReplyMode,
    ) -> SentReceipt:
        if mode == "private":
            return await self._private(session, request, comment_id)
        bodies = self._public_bodies(request)

        async def send_part(index: int) -> str:
            return await self._public(session, comment_id, bodies[index])

        return await self._resume.send(target, request, len(bodies), send_part)

    def _public_bodies(self, request: ReplyRequest) -> list[dict[str, Any]]:
        """``channels.render`` for a comment: a picture with its caption as ``message`` when
        the product takes pictures (Facebook), else its link as text."""
        parts = render(_without_keyboard(request), self._capabilities, code_points)
        return [_comment_body(part) for part in parts]

    async def _public(
        self, session: aiohttp.ClientSession, comment_id: str, body: dict[str, Any]
    ) -> str:
        answer = await graph_post(
            session,
            f"{self._graph}/{comment_id}/{self._edge}",
            token=self._token,
            body=body,
            what=f"{self._what} comment reply",
            timeout_s=self._timeout_s,
        )
        return answer_id(f"{self._what} comment reply", answer, "id")

    async def _private(
        self, session: aiohttp.ClientSession, request: ReplyRequest, comment_id: str
    ) -> SentReceipt:
        as_text = Capabilities(max_text_chars=PRIVATE_UNSPLIT, images=False, files=False)
        parts = render(_without_keyboard(request), as_text, self._private_measure)
        text = "\n".join(part.text for part in parts if isinstance(part, TextPart))
        length = self._private_measure(text)
        if length > self._max_private_text:
            raise PermanentSendError(
                f"a private reply is one message of at most {self._max_private_text} "
                f"{self._private_measure.__name__.replace('_', ' ')} (Meta allows one per "
                f"comment); this one has {length}"
            )
        body = {"recipient": {"comment_id": comment_id}, "message": {"text": text}}
        return SentReceipt(channel_message_ids=(await self._send_api.call(session, body),))


def _comment_body(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"message": part.text}
    return {"attachment_url": part.url, **({"message": part.caption} if part.caption else {})}
