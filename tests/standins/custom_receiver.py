"""The system at the other end of the custom connector, as a real aiohttp server on 127.0.0.1.

``CustomReceiverStandIn`` receives operator replies at ``url`` (the connector's
``reply_url``), checks their ``v1`` signature with the shared secret, records them and
answers ``{"message_ids": [...]}``; scripted failures (429 with ``Retry-After``, 500, 400)
are played first. ``post_messages`` is the other direction: it signs and posts a batch of
inbound messages to the engine the way the custom API expects.

    async with CustomReceiverStandIn(SECRET) as receiver:
        channel = CustomChannel(route, CustomCredentials(
            signing_secret=SECRET, reply_url=receiver.url))
        receiver.fail_next(429, retry_after="7")
        ...
        assert receiver.replies[0].body["content"] == {"kind": "text", "text": "hi"}
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
import orjson
from aiohttp import web

from engine.errors import AuthError
from engine.ids import new_id
from engine.security.webhook_signature import hmac_signature, signature_headers, verify_hmac
from tests.standins.server import LoopbackServer, ScriptedAnswer, play

_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ReceivedReply:
    """One validly signed reply, with the headers it was signed under."""

    webhook_id: str
    timestamp_s: int
    body: dict[str, Any]


class PostedBatch(NamedTuple):
    """What the engine answered to a posted batch."""

    status: int
    text: str


def signed_headers(
    secret: str, body: bytes, *, timestamp_s: int | None = None, webhook_id: str | None = None
) -> dict[str, str]:
    """The Standard Webhooks ``v1`` headers for ``body`` (now and a fresh id by default)."""
    webhook_id = webhook_id or new_id("msg")
    timestamp_s = int(time.time()) if timestamp_s is None else timestamp_s
    signature = hmac_signature(secret.encode(), webhook_id, timestamp_s, body)
    return signature_headers(webhook_id, timestamp_s, signature)


async def post_messages(
    session: aiohttp.ClientSession, url: str, secret: str, messages: list[dict[str, Any]]
) -> PostedBatch:
    """Sign and POST ``{"messages": messages}`` to a custom connector's inbound URL."""
    body = orjson.dumps({"messages": messages})
    headers = {**signed_headers(secret, body), "Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as response:
        return PostedBatch(response.status, await response.text())


class CustomReceiverStandIn(LoopbackServer):
    """Receives the custom connector's replies on a random loopback port.

    ``replies`` holds accepted replies in order; ``attempts`` every validly signed request,
    failed ones included; ``rejected`` the reason of each request refused with 401. Scripted
    answers are played to validly signed replies only.
    """

    PATH = "/replies"

    def __init__(self, signing_secret: str, *, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._secret = signing_secret.encode()
        self._now = now
        self.replies: list[ReceivedReply] = []
        self.attempts: list[ReceivedReply] = []
        self.rejected: list[str] = []
        self._ids = itertools.count(1)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(self.PATH, self._handle)

    @property
    def url(self) -> str:
        """What goes into ``CustomCredentials.reply_url``."""
        return f"{self.base_url}{self.PATH}"

    def fail_next(
        self,
        status: int,
        *,
        body: str = "",
        retry_after: str | None = None,
        date: str | None = None,
    ) -> None:
        """Refuse the next signed reply with ``status`` (and ``Retry-After`` and ``Date``
        headers: aiohttp adds the real time as ``Date`` when none is given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if date is not None:
            headers["Date"] = date
        self.script(ScriptedAnswer(status, body.encode(), headers=headers))

    def answer_next(self, body: bytes | dict[str, Any], *, status: int = 200) -> None:
        """Answer the next signed reply with ``status`` and ``body`` (a dict goes as JSON).

        The default answer is 200 ``{"message_ids": ["reply-<n>"]}``; a 2xx here still
        records the reply, any other status (a redirect, say) does not.
        """
        # Encoded here, not by play: the receiver answers orjson's bytes, as the default does.
        if isinstance(body, dict):
            self.script(ScriptedAnswer(status, orjson.dumps(body), headers=_JSON))
        else:
            self.script(ScriptedAnswer(status, body))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signed = verify_hmac(self._secret, request.headers, body, self._now())
        except AuthError as exc:
            self.rejected.append(str(exc))
            return web.Response(status=401, text=str(exc))
        reply = ReceivedReply(signed.message_id, signed.timestamp_s, orjson.loads(body))
        self.attempts.append(reply)
        answer = self._take_scripted()
        if answer is None:
            message_ids = [f"reply-{next(self._ids)}"]
            answer = ScriptedAnswer(200, orjson.dumps({"message_ids": message_ids}), headers=_JSON)
        if 200 <= answer.status < 300:
            self.replies.append(reply)
        return await play(answer)
