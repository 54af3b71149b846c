"""A stand-in for VK's API: a real aiohttp server on 127.0.0.1 speaking its format.

``POST /method/messages.send`` reads the form (and query) as VK does, records every call,
and answers ``{"response": <message id>}`` with increasing ids. Like VK, it delivers a
``random_id`` once per peer: a resend gets the first message's id back and is not appended to
``delivered``. Errors come the VK way, HTTP 200 with an ``error`` object: a wrong token is
error 5, missing parameters 100, a text past 9000 characters 914; scripted errors and
non-JSON answers are played first when told to, and ``hold_next`` delivers a call and never
answers it. The ``groups.*`` methods that set up a Callback server are ``groups``
(``tests.standins.vk_groups``). ``post_event`` is the other direction: it
posts a Callback API event to a webhook the way VK does.

    async with VkApiStandIn() as api:
        channel = VkChannel(route, VkCredentials(
            access_token=api.access_token, api_base_url=api.base_url, ...))
        api.fail_next(901, "Can't send messages for users without permission")
        ...
        assert api.calls[0].params["message"] == "hi"
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from tests.standins.server import LoopbackServer, ScriptedAnswer, play, proxy_error_page
from tests.standins.vk_groups import VkCallbackServers

DEFAULT_TOKEN = "vk1.a.stand-in-community-token"
RECORDED_EVENTS = Path(__file__).resolve().parent.parent / "data" / "vk"
MAX_MESSAGE_CHARS = 9000


@dataclass(frozen=True)
class ApiCall:
    """One request the stand-in received; form and query parameters, all strings."""

    method: str
    params: dict[str, str]
    content_type: str
    token: str | None


class PostedEvent(NamedTuple):
    """What a webhook answered to a posted event."""

    status: int
    text: str
    content_type: str


def recorded_event(name: str) -> dict[str, Any]:
    """A recorded Callback API event from tests/data/vk/``name``.json."""
    loaded: dict[str, Any] = json.loads((RECORDED_EVENTS / f"{name}.json").read_text())
    return loaded


async def post_event(
    session: aiohttp.ClientSession,
    webhook_url: str,
    event: dict[str, Any] | bytes,
    *,
    retry_counter: int | None = None,
) -> PostedEvent:
    """POST ``event`` as the Callback API does: a JSON body (``secret`` inside it, if any),
    and ``X-Retry-Counter`` on a redelivery."""
    body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if retry_counter is not None:
        headers["X-Retry-Counter"] = str(retry_counter)
    async with session.post(webhook_url, data=body, headers=headers) as response:
        return PostedEvent(response.status, await response.text(), response.content_type)


def vk_error(code: int, message: str, method: str = "messages.send") -> dict[str, Any]:
    """VK's error object, with the ``request_params`` echo VK adds."""
    params = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
    return {"error": {"error_code": code, "error_msg": message, "request_params": params}}


class VkApiStandIn(LoopbackServer):
    """VK's API on a random loopback port; use as an async context manager."""

    def __init__(
        self,
        access_token: str = DEFAULT_TOKEN,
        *,
        first_message_id: int = 2000,
        group_id: int = 193668024,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.groups = VkCallbackServers(group_id)
        self.calls: list[ApiCall] = []
        self.delivered: list[ApiCall] = []
        self._message_ids = itertools.count(first_message_id)
        self._by_random_id: dict[tuple[str, str], int] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/method/{method}", self._handle)

    # --- scripting

    def fail_next(
        self, code: int, message: str, *, after_calls: int = 0, delay_s: float = 0.0
    ) -> None:
        """Answer a call with HTTP 200 and VK's error object, as VK answers every API error."""
        answer = ScriptedAnswer(
            200, vk_error(code, message), after_calls=after_calls, delay_s=delay_s
        )
        self.script(answer)

    def break_next(self, status: int = 502) -> None:
        """A non-JSON answer, as the front servers give when the API behind them is down."""
        self.script(proxy_error_page(status))

    # --- the server

    async def _handle(self, request: web.Request) -> web.Response:
        call = ApiCall(
            method=request.match_info["method"],
            params=await _read_params(request),
            content_type=request.content_type,
            token=_token(request),
        )
        self.calls.append(call)
        scripted = self._take_scripted(call.method)
        if scripted is not None:
            return await play(scripted)
        if call.token == self.access_token and call.method.startswith("groups."):
            return web.json_response(
                await self.groups.answer(call.method, call.params, self._session())
            )
        answer = self._answer(call)
        await self._hold_if_asked(call.method)
        return web.json_response(answer)

    def _answer(self, call: ApiCall) -> dict[str, Any]:
        if call.token != self.access_token:
            return vk_error(5, "User authorization failed: invalid access_token (4).", call.method)
        if call.method != "messages.send":
            return vk_error(3, "Unknown method passed", call.method)
        problem = _send_problem(call.params)
        if problem is not None:
            return vk_error(*problem)
        key = (call.params["peer_id"], call.params["random_id"])
        if key not in self._by_random_id:  # VK drops a resend of a random_id it has seen
            self._by_random_id[key] = next(self._message_ids)
            self.delivered.append(call)
        return {"response": self._by_random_id[key]}


def _send_problem(params: dict[str, str]) -> tuple[int, str] | None:
    """The error VK gives a ``messages.send`` with these parameters, if any."""
    if "v" not in params:
        return 8, "Invalid request: v is required"
    for name in ("peer_id", "random_id"):
        if not params.get(name, "").lstrip("-").isdigit():
            return 100, f"One of the parameters specified was missing or invalid: {name}"
    if not params.get("message") and not params.get("attachment"):
        return 100, "One of the parameters specified was missing or invalid: message is empty"
    if len(params.get("message", "")) > MAX_MESSAGE_CHARS:
        return 914, "Message is too long"
    return None


async def _read_params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({name: str(value) for name, value in form.items()})
    return params


def _token(request: web.Request) -> str | None:
    """The token from ``Authorization: Bearer``, else from ``access_token``; VK takes both."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ")
    return request.query.get("access_token")
