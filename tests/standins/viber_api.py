"""A stand-in for Viber's REST Bot API: a real aiohttp server on 127.0.0.1 speaking its format.

``POST /pa/send_message`` records every call and answers like Viber, HTTP 200 with a
``status``: 0 and an increasing 64-bit ``message_token`` on success; 2 for a wrong token, 4
for a missing field, 3 for a text past its limit; scripted statuses (6 not subscribed, 12
too many requests, ...) and non-JSON answers are played first when told to. The token is
read from ``X-Viber-Auth-Token`` or, the legacy way, from ``auth_token`` in the body.
``POST /pa/set_webhook`` does what Viber does: it immediately posts a signed ``webhook``
check to the URL and fails unless that answers 200; ``POST /pa/get_account_info`` answers
for a good token. ``post_event`` signs and posts a
callback the way Viber does; ``deliver`` posts one to the webhook that was set.

    async with ViberApiStandIn() as api:
        channel = ViberChannel(route, ViberCredentials(
            auth_token=api.auth_token, api_base_url=api.base_url))
        api.fail_next(6, "notSubscribed")
        ...
        assert api.calls[0].body["text"] == "hi"
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import aiohttp
from aiohttp import web

from tests.standins.server import LoopbackServer, ScriptedAnswer, play, proxy_error_page

DEFAULT_TOKEN = "4453b6ac12345678-e02c5f12174805f9-9a1b2c3d4e5f6071"
SIGNATURE_HEADER = "X-Viber-Content-Signature"
RECORDED_EVENTS = Path(__file__).resolve().parent.parent / "data" / "viber"
MAX_TEXT_CHARS = 7000
MAX_PICTURE_TEXT_CHARS = 768
DEFAULT_EVENT_TYPES = ["delivered", "seen", "failed", "subscribed", "unsubscribed"]


@dataclass(frozen=True)
class ApiCall:
    """One request the stand-in received, its JSON body decoded."""

    path: str
    body: dict[str, Any]
    token: str | None
    content_type: str


class PostedEvent(NamedTuple):
    """What a webhook answered to a posted callback."""

    status: int
    text: str


def recorded_event(name: str) -> dict[str, Any]:
    """A recorded callback from tests/data/viber/``name``.json."""
    loaded: dict[str, Any] = json.loads((RECORDED_EVENTS / f"{name}.json").read_text())
    return loaded


def signature(auth_token: str, body: bytes) -> str:
    """Viber's signature of a callback body: lowercase hex HMAC-SHA256 keyed by the token."""
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


async def post_event(
    session: aiohttp.ClientSession,
    webhook_url: str,
    auth_token: str,
    event: dict[str, Any] | bytes,
    *,
    sign_in: Literal["header", "query"] = "header",
) -> PostedEvent:
    """Sign and POST ``event`` as Viber does: raw UTF-8 JSON (bytes are sent untouched),
    the signature in ``X-Viber-Content-Signature`` or in the ``sig`` query parameter."""
    body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    params: dict[str, str] = {}
    if sign_in == "header":
        headers[SIGNATURE_HEADER] = signature(auth_token, body)
    else:
        params["sig"] = signature(auth_token, body)
    async with session.post(webhook_url, data=body, headers=headers, params=params) as response:
        return PostedEvent(response.status, await response.text())


def status_body(status: int, message: str, token: int | None = None) -> dict[str, Any]:
    """Viber's answer object; every answer has the status and a chat host."""
    body: dict[str, Any] = {"status": status, "status_message": message}
    if token is not None:
        body["message_token"] = token
    return {**body, "chat_hostname": "SN-CHAT-01_"}


class ViberApiStandIn(LoopbackServer):
    """Viber's Bot API on a random loopback port; use as an async context manager.

    Scripted answers are played to ``send_message`` only.
    """

    def __init__(
        self,
        auth_token: str = DEFAULT_TOKEN,
        *,
        first_message_token: int = 5_169_280_000_000_000_000,
    ) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.calls: list[ApiCall] = []
        self.webhook: dict[str, Any] = {}
        self.webhook_checks: list[PostedEvent] = []
        self._tokens = itertools.count(first_message_token, 4_194_304)  # one ms apart

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/pa/send_message", self._send_message)
        router.add_post("/pa/set_webhook", self._set_webhook)
        router.add_post("/pa/get_account_info", self._account_info)

    # --- scripting

    def fail_next(
        self, status: int, message: str, *, after_calls: int = 0, delay_s: float = 0.0
    ) -> None:
        """Answer a ``send_message`` with HTTP 200 and a non-zero ``status``, as Viber does."""
        body = status_body(status, message, next(self._tokens))
        self.script(ScriptedAnswer(200, body, after_calls=after_calls, delay_s=delay_s))

    def break_next(self, status: int = 502) -> None:
        """A non-JSON answer, as a proxy in front of the API gives."""
        self.script(proxy_error_page(status))

    # --- delivering callbacks to the webhook

    async def deliver(self, event: dict[str, Any] | bytes) -> PostedEvent:
        """Sign and POST a callback to the webhook set by ``set_webhook``."""
        if not self.webhook.get("url"):
            raise RuntimeError("no webhook set: call set_webhook first")
        return await post_event(self._session(), self.webhook["url"], self.auth_token, event)

    # --- the server

    async def _read(self, request: web.Request) -> ApiCall:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        body = body if isinstance(body, dict) else {}
        token = request.headers.get("X-Viber-Auth-Token") or body.get("auth_token")
        call = ApiCall(request.path, body, token, request.content_type)
        self.calls.append(call)
        return call

    async def _send_message(self, request: web.Request) -> web.Response:
        call = await self._read(request)
        scripted = self._take_scripted("send_message")
        if scripted is not None:
            return await play(scripted)
        if call.token != self.auth_token:
            return web.json_response(status_body(2, "invalidAuthToken"))
        problem = _send_problem(call.body)
        if problem is not None:
            return web.json_response(status_body(*problem))
        return web.json_response(status_body(0, "ok", next(self._tokens)))

    async def _account_info(self, request: web.Request) -> web.Response:
        call = await self._read(request)
        if call.token != self.auth_token:
            return web.json_response(status_body(2, "invalidAuthToken"))
        account = {"id": "pa:5169272817712345", "name": "Stand-in", "uri": "standin"}
        return web.json_response({**status_body(0, "ok"), **account, **self.webhook})

    async def _set_webhook(self, request: web.Request) -> web.Response:
        call = await self._read(request)
        if call.token != self.auth_token:
            return web.json_response(status_body(2, "invalidAuthToken"))
        url = call.body.get("url")
        if not isinstance(url, str):
            return web.json_response(status_body(4, "missingData: url"))
        if not url:
            self.webhook = {}
            return web.json_response(status_body(0, "ok"))
        check = await self._check_webhook(url)
        if check.status != 200:
            message = f"Result[HttpRequest[POST {url}], HttpResponse[{check.status}]] is not 200"
            return web.json_response(status_body(1, message))
        event_types = call.body.get("event_types", DEFAULT_EVENT_TYPES)
        self.webhook = {"url": url, "event_types": event_types}
        return web.json_response({**status_body(0, "ok"), "event_types": event_types})

    async def _check_webhook(self, url: str) -> PostedEvent:
        """The ``webhook`` callback Viber posts to a URL before accepting it."""
        event = {
            "event": "webhook",
            "timestamp": int(time.time() * 1000),
            "chat_hostname": "SN-CHAT-01_",
            "message_token": next(self._tokens),
        }
        try:
            check = await post_event(self._session(), url, self.auth_token, event)
        except aiohttp.ClientError:
            check = PostedEvent(0, "unreachable")
        self.webhook_checks.append(check)
        return check


def _send_problem(body: dict[str, Any]) -> tuple[int, str] | None:
    """The status Viber gives a ``send_message`` with this body, if any."""
    sender = body.get("sender")
    if not isinstance(sender, dict) or not sender.get("name"):
        return 4, "missingData: sender.name"
    if len(sender["name"]) > 28:
        return 3, "badData: sender.name longer than 28"
    for name in ("receiver", "type"):
        if not body.get(name):
            return 4, f"missingData: {name}"
    kind = body["type"]
    if kind == "text" and not body.get("text"):
        return 4, "missingData: text"
    if kind == "text" and len(body["text"]) > MAX_TEXT_CHARS:
        return 3, "badData: text longer than 7000"
    if kind == "picture" and (not body.get("media") or "text" not in body):
        return 4, "missingData: media or text"
    if kind == "picture" and len(body["text"]) > MAX_PICTURE_TEXT_CHARS:
        return 3, "badData: picture text longer than 768"
    if kind == "file" and not all(body.get(name) for name in ("media", "size", "file_name")):
        return 4, "missingData: media, size or file_name"
    return None
