"""A stand-in for Telegram's Bot API: a real aiohttp server on 127.0.0.1 speaking its format.

It records every call in order, answers like Telegram (``{"ok": true, "result": Message}``
with increasing message ids), and plays scripted answers first when told to (429 with
``retry_after``, 403 blocked, 500, group migration, non-JSON bodies, slow answers);
``hold_next`` takes a call and never answers it.
``setWebhook`` and ``getWebhookInfo`` keep the webhook; ``deliver`` then posts an update to
it the way Telegram does. ``queue_update`` keeps updates for ``getUpdates`` (409 while a
webhook is set; an ``offset`` confirms the updates before it).

    async with TelegramApiStandIn() as api:
        channel = TelegramChannel(route, TelegramCredentials(
            bot_token=api.token, secret_token="s", api_base_url=api.base_url))
        api.fail_next(403, "Forbidden: bot was blocked by the user")
        ...
        assert api.calls[0].params == {"chat_id": "42", "text": "hi"}
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from tests.standins.server import LoopbackServer, ScriptedAnswer, play, proxy_error_page

DEFAULT_TOKEN = "123456:stand-in-token"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
RECORDED_UPDATES = Path(__file__).resolve().parent.parent / "data" / "telegram"


@dataclass(frozen=True)
class ApiCall:
    """One request the stand-in received, parameters decoded whatever the encoding."""

    method: str
    params: dict[str, Any]
    content_type: str
    token: str


class PostedUpdate(NamedTuple):
    """What a webhook answered to a posted update."""

    status: int
    text: str


def text_update(
    update_id: int, chat_id: int, text: str, first_name: str = "Майя"
) -> dict[str, Any]:
    """A private chat's text message as a Telegram update (webhook or ``getUpdates``)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": first_name},
            "chat": {"id": chat_id, "type": "private"},
            "date": 1776047737,
            "text": text,
        },
    }


def recorded_update(name: str) -> dict[str, Any]:
    """A recorded update from tests/data/telegram/``name``.json."""
    loaded: dict[str, Any] = json.loads((RECORDED_UPDATES / f"{name}.json").read_text())
    return loaded


async def post_update(
    session: aiohttp.ClientSession, webhook_url: str, secret: str | None, update: dict[str, Any]
) -> PostedUpdate:
    """POST ``update`` as Telegram does: one JSON Update, the secret header unless ``None``."""
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    async with session.post(webhook_url, json=update, headers=headers) as response:
        return PostedUpdate(response.status, await response.text())


@dataclass(frozen=True)
class StoredFile:
    body: bytes
    path: str
    content_type: str
    size: int
    chunked: bool = False


class TelegramApiStandIn(LoopbackServer):
    """Telegram's Bot API on a random loopback port; use as an async context manager."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, first_message_id: int = 1000) -> None:
        super().__init__()
        self.token = token
        self.calls: list[ApiCall] = []
        self.webhook: dict[str, Any] = {}
        self.pending: list[dict[str, Any]] = []
        self.files: dict[str, StoredFile] = {}
        self.downloads: list[str] = []
        self._message_ids = itertools.count(first_message_id)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/bot{token}/{method}", self._handle)
        router.add_get("/file/bot{token}/{path:.+}", self._download)

    # --- files (getFile and the download URL it leads to)

    def add_file(
        self,
        file_id: str,
        body: bytes,
        path: str,
        content_type: str,
        *,
        size: int | None = None,
        chunked: bool = False,
    ) -> None:
        """A file bots can fetch: ``getFile`` names ``path`` (and ``size``, by default the
        body's), ``/file/bot<token>/<path>`` answers ``body`` as ``content_type`` (``chunked``:
        without a ``Content-Length``, so only the bytes tell its size)."""
        size = len(body) if size is None else size
        self.files[file_id] = StoredFile(body, path, content_type, size, chunked)

    # --- inspecting

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls of one method, in order."""
        return [call for call in self.calls if call.method == method]

    # --- scripting

    def fail_next(
        self,
        status: int,
        description: str,
        *,
        parameters: dict[str, Any] | None = None,
        method: str | None = None,
        after_calls: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        """Answer a call (see ``ScriptedAnswer``) with a Telegram error object."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters is not None:
            body["parameters"] = parameters
        self.script(
            ScriptedAnswer(status, body, method=method, after_calls=after_calls, delay_s=delay_s)
        )

    def rate_limit_next(
        self,
        retry_after_s: int,
        *,
        method: str | None = None,
        after_calls: int = 0,
        header: str | None = None,
    ) -> None:
        """429 Too Many Requests with ``parameters.retry_after`` (and a ``Retry-After``
        header when ``header`` is given, as the Bot API's front servers add one)."""
        description = f"Too Many Requests: retry after {retry_after_s}"
        body = {
            "ok": False,
            "error_code": 429,
            "description": description,
            "parameters": {"retry_after": retry_after_s},
        }
        headers = {"Retry-After": header} if header is not None else {}
        self.script(
            ScriptedAnswer(429, body, method=method, after_calls=after_calls, headers=headers)
        )

    def block_next(self, *, method: str | None = None, after_calls: int = 0) -> None:
        """403: the user blocked the bot."""
        description = "Forbidden: bot was blocked by the user"
        self.fail_next(403, description, method=method, after_calls=after_calls)

    def migrate_next(
        self, new_chat_id: int, *, method: str | None = None, after_calls: int = 0
    ) -> None:
        """400: the group became a supergroup with ``new_chat_id``."""
        description = "Bad Request: group chat was upgraded to a supergroup chat"
        parameters = {"migrate_to_chat_id": new_chat_id}
        self.fail_next(
            400, description, parameters=parameters, method=method, after_calls=after_calls
        )

    def break_next(self, status: int = 502, *, method: str | None = None) -> None:
        """A non-JSON answer, as a proxy in front of the Bot API gives."""
        self.script(proxy_error_page(status, method))

    # --- updates for getUpdates

    def queue_update(self, update: dict[str, Any]) -> None:
        """An update for ``getUpdates`` (kept until an offset past it confirms it)."""
        self.pending.append(update)

    # --- delivering updates to the webhook

    async def deliver(self, update: dict[str, Any]) -> PostedUpdate:
        """POST ``update`` to the webhook set by ``setWebhook``, with its secret token."""
        if not self.webhook.get("url"):
            raise RuntimeError("no webhook set: call setWebhook first")
        return await post_update(
            self._session(), self.webhook["url"], self.webhook.get("secret_token"), update
        )

    # --- the server

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = ApiCall(
            method=method,
            params=await _read_params(request),
            content_type=request.content_type,
            token=request.match_info["token"],
        )
        self.calls.append(call)
        scripted = self._take_scripted(method)
        if scripted is not None:
            return await play(scripted)
        if call.token != self.token:
            return _error(401, "Unauthorized")
        answer = self._answer(call)
        await self._hold_if_asked(method)
        return answer

    def _answer(self, call: ApiCall) -> web.Response:
        params = call.params
        if call.method == "setWebhook":
            self.webhook = {key: params[key] for key in ("url", "secret_token") if key in params}
            return _ok(True)
        if call.method == "deleteWebhook":
            self.webhook = {}
            return _ok(True)
        if call.method == "getWebhookInfo":
            info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False}
            return _ok({**info, "pending_update_count": 0})
        if call.method == "getMe":
            return _ok(_bot_user())
        if call.method == "getUpdates":
            return self._get_updates(params)
        if call.method == "getFile":
            return self._get_file(params)
        if call.method.startswith("send"):
            if "chat_id" not in params:
                return _error(400, "Bad Request: chat_id is empty")
            return _ok(self._sent_message(call))
        return _error(404, "Not Found: method not found")

    def _get_file(self, params: dict[str, Any]) -> web.Response:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        result = {"file_id": params["file_id"], "file_unique_id": "AgADu", "file_path": stored.path}
        return _ok({**result, "file_size": stored.size})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """As Telegram: the bot's token in the path, 404 for a wrong token or path."""
        path = request.match_info["path"]
        self.downloads.append(path)
        found = [f for f in self.files.values() if f.path == path]
        if request.match_info["token"] != self.token or not found:
            return _error(404, "Not Found")
        stored = found[0]
        if not stored.chunked:
            return web.Response(body=stored.body, content_type=stored.content_type)
        response = web.StreamResponse(headers={"Content-Type": stored.content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(stored.body), 1024):
            await response.write(stored.body[start : start + 1024])
        await response.write_eof()
        return response

    def _get_updates(self, params: dict[str, Any]) -> web.Response:
        """As Telegram: 409 while a webhook is set; an ``offset`` confirms (forgets) every
        update before it; at most ``limit`` updates from the oldest kept."""
        if self.webhook.get("url"):
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = params.get("offset")
        if offset is not None:
            self.pending = [u for u in self.pending if u["update_id"] >= int(offset)]
        limit = int(params.get("limit", 100))
        return _ok(sorted(self.pending, key=lambda u: u["update_id"])[:limit])

    def _sent_message(self, call: ApiCall) -> dict[str, Any]:
        params = call.params
        chat_id = _as_int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": _bot_user(),
            "chat": {"id": chat_id, "type": "private" if _positive(chat_id) else "supergroup"},
            "date": int(time.time()),
        }
        if "text" in params:
            message["text"] = params["text"]
        if "caption" in params:
            message["caption"] = params["caption"]
        media = call.method.removeprefix("send").lower()
        if media in params:
            file_id = f"stand-in-{media}-{message['message_id']}"
            message[media] = [{"file_id": file_id}] if media == "photo" else {"file_id": file_id}
        return message


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters as Telegram reads them: query string, then JSON, form or multipart body."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {"_body": body})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for name, value in form.items():
            # An uploaded file is recorded as its bytes.
            params[name] = value.file.read() if isinstance(value, web.FileField) else value
    return params


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str) -> web.Response:
    body = {"ok": False, "error_code": status, "description": description}
    return web.json_response(body, status=status)


def _bot_user() -> dict[str, Any]:
    return {"id": 7000000001, "is_bot": True, "first_name": "Stand-in", "username": "stand_in_bot"}


def _as_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _positive(chat_id: Any) -> bool:
    return isinstance(chat_id, int) and chat_id > 0
