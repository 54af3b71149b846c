"""What every provider stand-in shares: a real aiohttp server on 127.0.0.1, and answers
scripted to be played before the normal ones.

A stand-in subclasses ``LoopbackServer``, adds its routes in ``add_routes`` and is used as an
async context manager, so each test gets its own server on a port the OS picks and never
leaves one running.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import KW_ONLY, dataclass, field, replace
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web


@dataclass(frozen=True)
class ScriptedAnswer:
    """An answer played instead of the normal one to a call of ``method`` (any if None).

    It answers the first such call after ``after_calls`` more have been answered normally.
    ``body`` is sent as JSON when it is a dict, verbatim when bytes. ``delay_s`` holds the
    answer back first (for client timeouts).
    """

    status: int
    body: dict[str, Any] | bytes
    _: KW_ONLY
    method: str | None = None
    after_calls: int = 0
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def proxy_error_page(status: int, method: str | None = None) -> ScriptedAnswer:
    """An HTML error page, as a proxy in front of a provider's API answers when it is down."""
    body = f"<html><body><h1>{status}</h1> nginx</body></html>".encode()
    return ScriptedAnswer(status, body, method=method, headers={"Content-Type": "text/html"})


def throttled_page(
    status: int = 429,
    *,
    retry_after: str | None = None,
    date: str | None = None,
    method: str | None = None,
) -> ScriptedAnswer:
    """A front server's throttling answer: an HTML page whose ``Retry-After`` header (delay
    seconds or an HTTP date) says when to come back, with the server's own ``Date`` when
    given (aiohttp adds the real time otherwise)."""
    page = proxy_error_page(status, method)
    if retry_after is not None:
        page.headers["Retry-After"] = retry_after
    if date is not None:
        page.headers["Date"] = date
    return page


async def play(answer: ScriptedAnswer) -> web.Response:
    """The response of a scripted answer, after its delay."""
    if answer.delay_s:
        await asyncio.sleep(answer.delay_s)
    if isinstance(answer.body, bytes):
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


class LoopbackServer(ABC):
    """A stand-in's server on a random loopback port, with its queue of scripted answers."""

    def __init__(self) -> None:
        self._scripted: deque[ScriptedAnswer] = deque()
        self._holds: dict[str, asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._port = 0

    @abstractmethod
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Route the provider's endpoints to the stand-in's handlers."""

    # --- lifecycle

    async def start(self) -> None:
        app = web.Application()
        self.add_routes(app.router)
        # Tests close it with nothing in flight; no need to wait for stragglers.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """The server's root URL: what goes into a channel's ``api_base_url``."""
        return f"http://127.0.0.1:{self._port}"

    def _session(self) -> aiohttp.ClientSession:
        """The client the stand-in posts to webhooks with, made on first use, closed by close."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        return self._client

    # --- scripting

    def script(self, answer: ScriptedAnswer) -> None:
        """Queue an answer; scripted answers are played first, in the order queued."""
        self._scripted.append(answer)

    def hold_next(self, method: str) -> asyncio.Event:
        """Take the next call of ``method`` as usual, then never answer it.

        The provider has the request and acts on it (a message is sent); its answer never
        reaches the caller, as when the caller dies or times out waiting. The event is set
        once the call arrived; the handler waits until the stand-in closes.
        """
        arrived = asyncio.Event()
        self._holds[method] = arrived
        return arrived

    async def _hold_if_asked(self, method: str) -> None:
        """Called after a call of ``method`` was acted on: never return if it is held."""
        arrived = self._holds.pop(method, None)
        if arrived is not None:
            arrived.set()
            await asyncio.Event().wait()  # cancelled when the stand-in closes

    def _take_scripted(self, method: str | None = None) -> ScriptedAnswer | None:
        """The first queued answer for ``method``, once its ``after_calls`` have passed.

        An answer for any method (``None``) matches every call; one for a method matches
        only a call naming it.
        """
        for index, answer in enumerate(self._scripted):
            if answer.method not in (None, method):
                continue
            if answer.after_calls:
                self._scripted[index] = replace(answer, after_calls=answer.after_calls - 1)
                return None
            del self._scripted[index]
            return answer
        return None
