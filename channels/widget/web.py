"""The widget's HTTP face, served by every channel actor beside the webhooks.

Routes under ``/widget/{widget_id}/`` (docs/channels/widget.md has the wire format):

* ``widget.js``: the script a site embeds; ``chat``: a page of its own with the chat alone;
* ``session``: a new visitor's token, or the settings for a token the visitor holds;
* ``messages``, ``details``, ``files``: what a visitor sends, each under their token;
* ``typing``: the visitor is typing, passed to the portal as the contract's ``typing`` event;
* ``files/{file_id}``: an upload, served as its own checked type, never as a page;
* ``live``: the WebSocket a page receives its conversation on, resuming from a cursor.

Every request passes, in this order: the widget (404), the address's rate limit (429),
the page's origin (403), the visitor's token (401), the visitor's rate limit (429), the
body (400/413/415/422). A visitor's message is appended to the widget log (a repeat of
its ``client_id`` gets the ``seq`` it had) and then to the channel actor's durable intake,
as every webhook's messages; only then is it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from importlib import resources

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field

from channels.base import Credentials
from channels.widget.channel import WidgetChannel
from channels.widget.config import WidgetCredentials
from channels.widget.files import checked_upload, download_headers, file_content
from channels.widget.limits import RateLimits
from channels.widget.live import LiveConnection, LiveHub
from channels.widget.log import (
    HISTORY_MAX,
    Appended,
    NewEntry,
    StoredFile,
    Visitor,
    token_hash,
)
from channels.widget.logs import HOME_PATTERN, WidgetLogs, home_of, homed, process_logs
from engine.buttons.keyboard import PAYLOAD_MAX_CHARS, PAYLOAD_PATTERN
from engine.buttons.press import BUTTON_PAYLOAD_EXTRA
from engine.config import ConnectorConfig
from engine.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from engine.ids import new_id
from engine.models import Content, Frozen, TextContent
from engine.rate_ledger import SYNC_S
from engine.web.common import json_body, json_response, parse_json, parse_model
from engine.web.ports import Engine
from engine.web.webhooks import WebhookIngest

log = logging.getLogger(__name__)

CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PHONE_PATTERN = r"^\+?[0-9 ()-]{5,30}$"
CALLBACK_EXTRA = "request"
"""``extras["request"] == "callback"``: the message asks the line to call the visitor back."""
TYPING_REMEMBERED = 100_000
"""Visitors whose last typing window one process remembers at most."""
HELLO_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data: https:;"
    " style-src 'self'; base-uri 'none'; form-action 'none'"
)
"""The chat page's policy: its one script and its own API, nothing inline, nothing else.
Pictures may also come from any https address: the operators' and the line's avatars are
https URLs on hosts the engine cannot list (docs/channels/widget.md, "Sender"); only
``img-src`` is widened. The widget's styles are constructed stylesheets
(``adoptedStyleSheets``), which a policy without ``'unsafe-inline'`` allows."""

HUB_KEY = web.AppKey("widget_hub", LiveHub)


class TokenError(AuthError):
    """No visitor's token, or one this widget does not know (401 ``bad_token``)."""

    reason = "bad_token"


class SessionBody(Frozen):
    token: str | None = Field(default=None, max_length=200)


class MessageBody(Frozen):
    client_id: str = Field(pattern=CLIENT_ID_PATTERN, description="The widget's own id.")
    text: str | None = Field(default=None, min_length=1, max_length=100_000)
    button: str | None = Field(default=None, pattern=PAYLOAD_PATTERN, max_length=PAYLOAD_MAX_CHARS)
    file_id: str | None = Field(default=None, pattern=rf"^file_[0-9a-f]{{32}}(@{HOME_PATTERN})?$")


class DetailsBody(Frozen):
    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    email: str | None = Field(default=None, pattern=r"^[^\s@]{1,64}@[^\s@]{1,190}\.[^\s@]{2,}$")


class CallbackBody(Frozen):
    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    phone: str = Field(pattern=PHONE_PATTERN, description="Where to call.")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    note: str | None = Field(default=None, min_length=1, max_length=500, description="When, why.")


class TypingBody(Frozen):
    """``{}``: the visitor is typing (nothing else to say; an unknown field is refused)."""


class Hello(Frozen):
    token: str = Field(max_length=200)
    after: int = Field(default=0, ge=0)


class WidgetApi:
    """The handlers; ``hub`` holds this process's live connections."""

    def __init__(
        self, engine: Engine, ingest: WebhookIngest, logs: WidgetLogs | None = None
    ) -> None:
        """``logs``: this node's widget log and the way to the others' (default: as the
        process was told, ``channels.widget.logs.process_logs``)."""
        self._engine = engine
        self._ingest = ingest
        self._logs = logs or process_logs(engine.config.data_dir, engine.clock)
        actors = engine.config.channel_actors
        self._limits = RateLimits(
            engine.clock.now, actors, engine.share_usage if actors > 1 else None
        )
        self.hub = LiveHub(self._logs, engine.counters)
        self._index: tuple[object, dict[str, ConnectorConfig]] = (None, {})
        self._typing_sent: dict[str, str] = {}
        """Per visitor, the typing event this process last stored: its repeats in the same
        window are answered without a write."""
        self._script = resources.files("channels.widget").joinpath("static/widget.js").read_bytes()

    def attach(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.get("/widget/{widget_id}/widget.js", self.script),
                web.get("/widget/{widget_id}/chat", self.page),
                web.options("/widget/{widget_id}/{tail:.+}", self.preflight),
                web.post("/widget/{widget_id}/session", self.session),
                web.post("/widget/{widget_id}/messages", self.message),
                web.post("/widget/{widget_id}/details", self.details),
                web.post("/widget/{widget_id}/callback", self.callback),
                web.post("/widget/{widget_id}/typing", self.typing),
                web.post("/widget/{widget_id}/files", self.upload),
                web.get("/widget/{widget_id}/files/{file_id}", self.download),
                web.get("/widget/{widget_id}/live", self.live),
            ]
        )
        app.on_response_prepare.append(self._cors)
        app[HUB_KEY] = self.hub
        app.cleanup_ctx.append(self._hub_running)
        if self._engine.config.channel_actors > 1:
            app.cleanup_ctx.append(self._limits_shared)

    async def _hub_running(self, app: web.Application) -> AsyncIterator[None]:
        await self.hub.start()
        yield
        await self.hub.stop()

    async def _limits_shared(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self._share_limits())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _share_limits(self) -> None:
        """Every ``SYNC_S``, what this actor admitted goes to the engine's ledger and the
        engine-wide levels come back (channels/widget/limits.py). Real time: it paces
        traffic, not a domain timer; an actor that admitted nothing makes no call."""
        failing = False
        while True:
            await asyncio.sleep(SYNC_S)
            try:
                await self._limits.sync()
            except Exception as exc:  # a loop boundary: this actor limits alone meanwhile
                self._engine.counters.inc("openlines_loop_errors_total", loop="widget_limits")
                if not failing:
                    log.warning("widget limits: the engine's ledger is not reached: %s", exc)
                failing = True
                continue
            if failing:
                log.info("widget limits: the engine's ledger is reached again")
                failing = False

    # --- which widget, and who may use it

    def _connector(self, widget_id: str) -> ConnectorConfig:
        registry = self._engine.registry
        if self._index[0] is not registry:
            index = {
                str(c.credentials.get("widget_id")): c
                for c in registry.connectors.values()
                if c.channel == WidgetChannel.name
            }
            self._index = (registry, index)
        connector = self._index[1].get(widget_id)
        if connector is None:
            raise NotFoundError(f"no widget {widget_id!r}")
        return connector

    def _channel(self, request: web.Request) -> WidgetChannel:
        connector = self._connector(request.match_info["widget_id"])
        channel = self._engine.channel(connector)
        assert isinstance(channel, WidgetChannel)
        return channel

    async def _admitted(self, request: web.Request) -> WidgetChannel:
        """The widget, once the address is within its limit and the page's origin allowed."""
        channel = self._channel(request)
        settings = _settings(channel.credentials)
        await self._limits.take(
            f"ip:{request.remote}", settings.address_requests_per_minute, "requests from here"
        )
        origin = request.headers.get("Origin")
        if origin is not None and not _origin_allowed(origin, settings, request):
            raise ForbiddenError(f"origin {origin!r} may not use this widget")
        return channel

    async def _visitor(self, request: web.Request, channel: WidgetChannel) -> Visitor:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("send the visitor's token as Authorization: Bearer <token>")
        return await self._visitor_of(token, channel)

    async def _visitor_of(self, token: str, channel: WidgetChannel) -> Visitor:
        try:
            port = self._logs.of(home_of(token))
        except NotFoundError:
            raise TokenError("unknown or expired visitor token") from None
        visitor = await port.visitor(token_hash(token))
        # The hash is looked up, then the connector compared in constant time: a token of
        # another widget is refused like an unknown one.
        if visitor is None or not hmac.compare_digest(
            visitor.connector_id, channel.route.connector_id
        ):
            raise TokenError("unknown or expired visitor token")
        return visitor

    async def _visitor_limit(self, visitor: Visitor, channel: WidgetChannel) -> None:
        per_minute = _settings(channel.credentials).visitor_messages_per_minute
        await self._limits.take(f"v:{visitor.visitor_id}", per_minute, "messages of this visitor")

    async def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        """Let an allowed page read the answer (refusals included)."""
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith("/widget/"):
            return
        try:
            settings = _settings(self._channel(request).credentials)
        except (NotFoundError, KeyError):
            return
        if _origin_allowed(origin, settings, request):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"

    async def preflight(self, request: web.Request) -> web.Response:
        await self._admitted(request)
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, X-File-Name",
                "Access-Control-Max-Age": "600",
            },
        )

    # --- the script and the page

    async def script(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(
            body=self._script,
            content_type="text/javascript",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    async def page(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        widget_id = request.match_info["widget_id"]
        title = html.escape(_settings(channel.credentials).texts.title)
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body>"
            f'<script src="/widget/{widget_id}/widget.js" data-mode="page"></script>'
            "</body></html>"
        )
        origins = " ".join(_settings(channel.credentials).allowed_origins)
        return web.Response(
            text=body,
            content_type="text/html",
            headers={
                "Content-Security-Policy": f"{PAGE_CSP}; frame-ancestors 'self' {origins}",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    # --- a visitor's calls

    async def session(self, request: web.Request) -> web.Response:
        channel = await self._admitted(request)
        body = parse_model(SessionBody, parse_json(await json_body(request)))
        settings = _settings(channel.credentials)
        if body.token is not None:
            with contextlib.suppress(AuthError):
                visitor = await self._visitor_of(body.token, channel)
                return json_response(_session_json(body.token, visitor, settings))
        # A new visitor's home is this node's log (docs/channels/widget.md, "Across machines").
        token = homed(secrets.token_urlsafe(32), self._logs.home)
        visitor_id = homed(new_id("vis"), self._logs.home)
        await self._logs.local.add_visitor(
            token_hash(token), channel.route.connector_id, visitor_id, self._engine.clock.now()
        )
        visitor = Visitor(channel.route.connector_id, visitor_id)
        return json_response(_session_json(token, visitor, settings), status=201)

    async def message(self, request: web.Request) -> web.Response:
        channel = await self._admitted(request)
        visitor = await self._visitor(request, channel)
        await self._visitor_limit(visitor, channel)
        body = parse_model(MessageBody, parse_json(await json_body(request)))
        settings = _settings(channel.credentials)
        if settings.form.required and not (visitor.name or visitor.phone or visitor.email):
            raise ConflictError("leave your details in the form first", "form_required")
        content = await self._content(body, visitor, settings, request)
        extras = {BUTTON_PAYLOAD_EXTRA: body.button} if body.button is not None else {}
        seq = await self._store(channel, visitor, body.client_id, content, extras)
        return json_response({"seq": seq, "client_id": body.client_id})

    async def details(self, request: web.Request) -> web.Response:
        """The visitor form: kept with the visitor, carried on their messages to the CRM
        (name, phone, e-mail: docs/crm.md), and said in the chat so the operator sees it."""
        channel = await self._admitted(request)
        visitor = await self._visitor(request, channel)
        await self._visitor_limit(visitor, channel)
        body = parse_model(DetailsBody, parse_json(await json_body(request)))
        if body.name is None and body.phone is None and body.email is None:
            raise BadRequestError("give a name, a phone or an e-mail address")
        await self._logs.of_visitor(visitor.visitor_id).set_details(
            visitor.visitor_id, body.name, body.phone, body.email
        )
        visitor = Visitor(
            visitor.connector_id,
            visitor.visitor_id,
            body.name or visitor.name,
            body.phone or visitor.phone,
            body.email or visitor.email,
        )
        said = "; ".join(
            f"{what}: {value}"
            for what, value in (("name", body.name), ("phone", body.phone), ("e-mail", body.email))
            if value is not None
        )
        seq = await self._store(channel, visitor, body.client_id, TextContent(text=said), {})
        return json_response({"seq": seq, "client_id": body.client_id})

    async def callback(self, request: web.Request) -> web.Response:
        """ "Call me back": a message in the line's dialog with the visitor that says so
        (``extras``: ``request: callback``, ``callback_phone``), the phone kept with the
        visitor and carried to the CRM; routed like any message, also outside hours."""
        channel = await self._admitted(request)
        if not _settings(channel.credentials).callback:
            raise NotFoundError("this widget takes no callback requests")
        visitor = await self._visitor(request, channel)
        await self._visitor_limit(visitor, channel)
        body = parse_model(CallbackBody, parse_json(await json_body(request)))
        await self._logs.of_visitor(visitor.visitor_id).set_details(
            visitor.visitor_id, body.name, body.phone, None
        )
        visitor = Visitor(
            visitor.connector_id,
            visitor.visitor_id,
            body.name or visitor.name,
            body.phone,
            visitor.email,
        )
        said = f"Please call me back: {body.phone}"
        if body.name:
            said += f" ({body.name})"
        if body.note:
            said += f". {body.note}"
        extras = {CALLBACK_EXTRA: "callback", "callback_phone": body.phone}
        seq = await self._store(channel, visitor, body.client_id, TextContent(text=said), extras)
        return json_response({"seq": seq, "client_id": body.client_id})

    async def typing(self, request: web.Request) -> web.Response:
        """The visitor is typing: at most one ``typing`` channel event per visitor and
        window (``VISITOR_TYPING_EVERY_S``), best effort, to the dialog's stream
        (docs/channels/widget.md, "Typing"). Not counted against the visitor's messages:
        the window is its limit; the address's limit applies as to every request."""
        channel = await self._admitted(request)
        visitor = await self._visitor(request, channel)
        parse_model(TypingBody, parse_json(await json_body(request)))
        event = channel.visitor_typing(visitor, self._engine.clock.now())
        if self._typing_sent.get(visitor.visitor_id) == event.channel_event_id:
            return json_response({"sent": False})
        with self._ingest.handling():
            [stored] = await self._ingest.store([], WidgetChannel.name, [event])
        if len(self._typing_sent) >= TYPING_REMEMBERED:
            self._typing_sent.clear()  # a forgotten window only costs one deduplicated write
        self._typing_sent[visitor.visitor_id] = event.channel_event_id
        return json_response({"sent": stored})

    async def _content(
        self,
        body: MessageBody,
        visitor: Visitor,
        settings: WidgetCredentials,
        request: web.Request,
    ) -> Content:
        if (body.text is None) == (body.file_id is None):
            raise BadRequestError("send either a text or a file_id")
        if body.text is not None:
            if len(body.text) > settings.max_text_chars:
                raise BadRequestError(f"text over {settings.max_text_chars} characters")
            return TextContent(text=body.text)
        assert body.file_id is not None
        stored = await self._logs.of_visitor(visitor.visitor_id).file(body.file_id)
        if stored is None or stored.visitor_id != visitor.visitor_id:
            raise NotFoundError(f"no file {body.file_id!r} of this visitor")
        url = f"{self._base_url(request)}/widget/{request.match_info['widget_id']}/files/"
        return file_content(body.file_id, stored, url + body.file_id)

    def _base_url(self, request: web.Request) -> str:
        configured = self._engine.config.public_url
        return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"

    async def _store(
        self,
        channel: WidgetChannel,
        visitor: Visitor,
        client_id: str,
        content: Content,
        extras: dict[str, str],
    ) -> int:
        """In the widget log (ordered, de-duplicated on the client's id), then in the
        intake like every webhook's messages; a failure in between is answered with an
        error, and the client's repeat stores the rest once."""
        entry_body = {
            "from": "visitor",
            "client_id": client_id,
            "content": content.model_dump(mode="json"),
        }
        entry = NewEntry(
            channel.route.connector_id,
            visitor.visitor_id,
            f"v:{visitor.visitor_id}:{client_id}",
            orjson.dumps(entry_body),
        )
        # As a webhook is: its start holds this actor's watermark until it is in the intake.
        with self._ingest.handling():
            home = home_of(visitor.visitor_id)
            appended: Appended = (await self._logs.of(home).append([entry]))[0]
            self.hub.nudge(home)
            now = self._engine.clock.now()
            message = channel.inbound(visitor, client_id, content, appended.seq, now, extras)
            await self._ingest.store([message], WidgetChannel.name)
        return appended.seq

    async def upload(self, request: web.Request) -> web.Response:
        channel = await self._admitted(request)
        visitor = await self._visitor(request, channel)
        await self._visitor_limit(visitor, channel)
        settings = _settings(channel.credentials)
        data = await request.read()
        name = urllib.parse.unquote(request.headers.get("X-File-Name", ""))
        stored = checked_upload(
            data,
            request.content_type,
            name,
            settings,
            StoredFile(channel.route.connector_id, visitor.visitor_id, "", "", b""),
        )
        # Kept with everything else of the visitor, in their home's log.
        file_id = homed(f"file_{secrets.token_hex(16)}", home_of(visitor.visitor_id))
        await self._logs.of_visitor(visitor.visitor_id).put_file(
            file_id, stored, self._engine.clock.now()
        )
        return json_response(
            {"file_id": file_id, "name": stored.name, "mime_type": stored.mime_type}, status=201
        )

    async def download(self, request: web.Request) -> web.Response:
        """By its unguessable id: the visitor's page and the operator's portal both show it."""
        channel = self._channel(request)
        file_id = request.match_info["file_id"]
        try:
            stored = await self._logs.of(home_of(file_id)).file(file_id)
        except NotFoundError:
            stored = None
        if stored is None or stored.connector_id != channel.route.connector_id:
            raise NotFoundError("no such file")
        return web.Response(body=stored.data, headers=download_headers(stored))

    # --- the live connection

    async def live(self, request: web.Request) -> web.StreamResponse:
        channel = await self._admitted(request)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
        await ws.prepare(request)
        try:
            hello = await self._hello(ws)
            visitor = await self._visitor_of(hello.token, channel)
        except (AuthError, BadRequestError, TimeoutError) as exc:
            await ws.send_str(orjson.dumps({"error": "auth", "message": str(exc)}).decode())
            await ws.close(code=4401, message=b"unauthorized")
            return ws
        await self._serve_live(ws, visitor, hello.after)
        return ws

    async def _hello(self, ws: web.WebSocketResponse) -> Hello:
        message = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
        if message.type != WSMsgType.TEXT:
            raise BadRequestError("the first frame is the hello, as JSON text")
        try:
            return parse_model(Hello, parse_json(message.data.encode()))
        except Exception as exc:  # any bad hello is refused the same way, with its reason
            raise BadRequestError(f"bad hello: {exc}") from None

    async def _serve_live(self, ws: web.WebSocketResponse, visitor: Visitor, after: int) -> None:
        async def send(frame: bytes) -> None:
            await ws.send_str(frame.decode())

        connection = LiveConnection(visitor.visitor_id, after, send)
        port = self._logs.of_visitor(visitor.visitor_id)
        await self.hub.add(connection)
        try:
            await ws.send_str(orjson.dumps({"live": True, "after": after}).decode())
            now = self._engine.clock.now()  # the log's ``at`` is on the engine's clock
            backlog = await port.entries_of(visitor.visitor_id, after, HISTORY_MAX, now)
            while True:
                await connection.catch_up(backlog)
                if len(backlog) < HISTORY_MAX:
                    break
                backlog = await port.entries_of(
                    visitor.visitor_id, connection.last_sent, HISTORY_MAX, now
                )
            del backlog  # an idle connection keeps none of what it sent
            async for message in ws:  # the client says nothing more; read until it goes
                if message.type == WSMsgType.ERROR:
                    break
        except ConnectionResetError:
            # The visitor went away mid-send: nothing is lost, their next connection
            # resumes from the cursor (docs/channels/widget.md, "The live path back").
            log.debug("visitor %s went away mid-send", visitor.visitor_id)
        finally:
            self.hub.remove(connection)


def _settings(credentials: Credentials) -> WidgetCredentials:
    assert isinstance(credentials, WidgetCredentials)
    return credentials


def _origin_allowed(origin: str, settings: WidgetCredentials, request: web.Request) -> bool:
    """One of the widget's origins, or the engine's own (the chat page)."""
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in settings.allowed_origins


def _session_json(token: str, visitor: Visitor, settings: WidgetCredentials) -> dict[str, object]:
    return {
        "token": token,
        "visitor_id": visitor.visitor_id,
        "details": {"name": visitor.name, "phone": visitor.phone, "email": visitor.email},
        "settings": settings.public_settings(),
    }
