"""A stand-in for Meta's Graph API and its webhooks: a real aiohttp server on 127.0.0.1.

Outbound (what the channels call), answered like Meta (docs/channels/facebook.md,
instagram.md, whatsapp.md):

* ``POST /{version}/{page or IG account}/messages``: the Send API. Checks the Bearer token of
  the account, a ``recipient`` (``id`` or ``comment_id``), text within 2000 characters and
  never text and an attachment together; a second private reply to one comment fails with
  code 10900. Answers ``{"recipient_id", "message_id"}``.
* ``POST /{version}/{phone_number_id}/messages``: WhatsApp Cloud API. Checks
  ``messaging_product``, ``to`` and the ``type``'s object, a text within 4096 characters.
  Answers ``{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}``.
* ``POST /{version}/{comment id}/comments`` (Facebook) and ``/replies`` (Instagram): a public
  reply, answered ``{"id"}``.
* ``GET /{version}/debug_token?input_token=`` (with the app token ``<app id>|<secret>``):
  ``{"data": {"is_valid", "app_id", "scopes", ...}}`` from ``token_scopes``.
* ``POST /{version}/{app id}/subscriptions`` (app token): the app's webhook for an object;
  like Meta, it first checks the ``callback_url`` with the GET handshake and the
  ``verify_token``, and fails with code 2200 unless the challenge comes back
  (``app_subscriptions``).
* ``POST`` / ``DELETE /{version}/{node}/subscribed_apps``: the app's webhook subscription of
  a page, account or business account (``subscriptions``), answered ``{"success": true}``.
* ``GET /{version}/{IG account}/media`` and ``GET /{version}/{media}/comments`` (with
  ``replies``, paged by ``after``): what the comment poll reads, from ``media`` and
  ``comments``.
* Scripted answers (``fail_next``, ``throttle_next``, ``break_next``) are played first:
  Graph error objects with Meta's codes, throttling with ``X-Business-Use-Case-Usage``, a
  proxy's HTML page.

Inbound: ``notification`` builds a batch, ``encode`` writes it the way Meta does (non-ASCII
escaped as ``\\uXXXX``), ``post_notification`` signs and POSTs it, ``handshake`` does the GET.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from channels.meta.signature import hub_signature
from tests.standins.server import LoopbackServer, ScriptedAnswer, play, proxy_error_page

APP_SECRET = "5f0c1e8d2b7a49d6a3c8e1f0b2d4c6e8"
VERIFY_TOKEN = "open-lines-verify-7Qm2"
APP_ID = "1929931607227568"
PAGE_ID = "134968929707951"
PAGE_TOKEN = "EAAGpage-token-134968929707951"
PSID_EXAMPLE = "7689966077685933"
FEED_PAGE_ID = "370873143344730"
IG_ACCOUNT_ID = "17841405309211844"
IG_COMMENTS_ACCOUNT_ID = "17841430541631416"
IG_TOKEN = "EAAGig-token-17841405309211844"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
WA_TOKEN = "EAAGwa-system-user-token"
RECORDED = Path(__file__).resolve().parent.parent / "data" / "meta"
MAX_MESSENGER_TEXT = 2000
MAX_WHATSAPP_TEXT = 4096


@dataclass(frozen=True)
class GraphCall:
    """One request the stand-in received."""

    method: str
    node: str
    edge: str
    body: dict[str, Any]
    token: str | None


class Posted(NamedTuple):
    """What a webhook answered."""

    status: int
    text: str


def recorded(name: str) -> bytes:
    """A recorded notification body from tests/data/meta/, byte for byte."""
    return (RECORDED / name).read_bytes()


def recorded_json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(recorded(name))
    return loaded


def encode(notification: dict[str, Any]) -> bytes:
    """The body as Meta writes it: compact, non-ASCII escaped as ``\\uXXXX``."""
    return json.dumps(notification, separators=(",", ":"), ensure_ascii=True).encode()


def notification(obj: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": obj, "entry": list(entries)}


def messaging_entry(account_id: str, *events: dict[str, Any], time_ms: int = 0) -> dict[str, Any]:
    return {"id": account_id, "time": time_ms or 1698637601363, "messaging": list(events)}


def changes_entry(account_id: str, field_name: str, *values: dict[str, Any]) -> dict[str, Any]:
    changes = [{"field": field_name, "value": value} for value in values]
    return {"id": account_id, "time": 1701413579, "changes": changes}


def signed_headers(body: bytes, app_secret: str = APP_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": hub_signature(app_secret, body),
    }


async def post_notification(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes | dict[str, Any],
    *,
    app_secret: str = APP_SECRET,
) -> Posted:
    """Sign and POST a notification as Meta does (bytes are sent untouched)."""
    raw = body if isinstance(body, bytes) else encode(body)
    async with session.post(url, data=raw, headers=signed_headers(raw, app_secret)) as response:
        return Posted(response.status, await response.text())


async def handshake(
    session: aiohttp.ClientSession, url: str, verify_token: str, challenge: str = "1158201444"
) -> Posted:
    """Meta's GET subscription check."""
    params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    async with session.get(url, params=params) as response:
        return Posted(response.status, await response.text())


def graph_error_body(
    code: int, message: str, *, subcode: int | None = None, details: str | None = None
) -> dict[str, Any]:
    """Meta's error object."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbUhinTvMOkPfgH-hzBJKfQ",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


@dataclass
class _Accounts:
    messenger: dict[str, str] = field(default_factory=dict)
    whatsapp: dict[str, str] = field(default_factory=dict)


class MetaGraphStandIn(LoopbackServer):
    """Meta's Graph API on a random loopback port; use as an async context manager."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[GraphCall] = []
        self.accounts = _Accounts(
            messenger={
                PAGE_ID: PAGE_TOKEN,
                FEED_PAGE_ID: PAGE_TOKEN,
                IG_ACCOUNT_ID: IG_TOKEN,
                IG_COMMENTS_ACCOUNT_ID: IG_TOKEN,
            },
            whatsapp={PHONE_NUMBER_ID: WA_TOKEN},
        )
        self.private_replies: set[str] = set()
        self.token_scopes: dict[str, tuple[str, ...]] = {
            PAGE_TOKEN: (
                "pages_messaging",
                "pages_manage_metadata",
                "pages_manage_engagement",
                "pages_read_user_content",
            ),
            IG_TOKEN: (
                "instagram_business_basic",
                "instagram_business_manage_messages",
                "instagram_business_manage_comments",
            ),
            WA_TOKEN: ("whatsapp_business_messaging", "whatsapp_business_management"),
        }
        self.subscriptions: dict[str, tuple[str, ...]] = {}
        self.app_subscriptions: dict[str, dict[str, str]] = {}
        self.media: dict[str, list[dict[str, Any]]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.templates: dict[tuple[str, str], int] = {("order_update", "en_US"): 1}
        """The business account's approved templates: (name, language) -> body parameters."""
        self.message_ids: list[str] = []
        """The ids of the Send API messages sent, in order (what echoes name)."""
        self._answer_gate: tuple[asyncio.Event, asyncio.Event] | None = None
        self.whatsapp_media: dict[str, tuple[bytes, str]] = {}
        self.media_downloads: list[str] = []
        self._ids = itertools.count(1)

    @property
    def graph_api_url(self) -> str:
        return f"{self.base_url}/v21.0"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/whatsapp-media/{media_id}", self._download_media)
        router.add_get("/{version}/debug_token", self._debug_token)
        router.add_get("/{version}/{node}", self._get_node)
        router.add_get("/{version}/{node}/{edge}", self._get_edge)
        router.add_post("/{version}/{node}/{edge}", self._post)
        router.add_delete("/{version}/{node}/{edge}", self._post)

    # --- scripting

    def fail_next(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        details: str | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
        after_calls: int = 0,
    ) -> None:
        """Answer the next call with Meta's error object."""
        body = graph_error_body(code, message, subcode=subcode, details=details)
        self.script(ScriptedAnswer(status, body, after_calls=after_calls, headers=headers or {}))

    def throttle_next(
        self, code: int = 613, *, regain_minutes: int = 3, after_calls: int = 0
    ) -> None:
        """A rate-limit error with the business use case header naming the wait."""
        usage = {
            PAGE_ID: [
                {
                    "type": "messenger",
                    "call_count": 100,
                    "total_cputime": 4,
                    "total_time": 5,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        self.fail_next(
            code,
            "(#613) Calls to this api have exceeded the rate limit.",
            headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
            after_calls=after_calls,
        )

    def hold_next_answer(self) -> tuple[asyncio.Event, asyncio.Event]:
        """Send the next Send API message, then hold its answer until ``release`` is set:
        the message exists (an echo of it may come) while the caller does not know its id.
        Returns ``(sent, release)``."""
        gate = (asyncio.Event(), asyncio.Event())
        self._answer_gate = gate
        return gate

    def break_next(self, status: int = 502) -> None:
        self.script(proxy_error_page(status))

    def sent(self, edge: str = "messages") -> list[dict[str, Any]]:
        """The bodies of the calls to ``edge`` that were answered."""
        return [call.body for call in self.calls if call.edge == edge]

    # --- the server

    async def _post(self, request: web.Request) -> web.Response:
        node, edge = request.match_info["node"], request.match_info["edge"]
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            body = dict(await request.post()) if request.content_type.endswith("form") else {}
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        token = token or request.query.get("access_token")
        self.calls.append(GraphCall(request.method, node, edge, body, token))
        scripted = self._take_scripted()
        if scripted is not None:
            return await play(scripted)
        if edge == "subscriptions" and node == APP_ID:
            return await self._app_subscription(token, request.query)
        if edge == "subscribed_apps":
            return self._subscribed_apps(request.method, node, token, request.query)
        if edge == "messages" and node in self.accounts.whatsapp:
            return self._whatsapp(node, token, body)
        if edge == "messages":
            answer = self._messenger(node, token, body)
            gate, self._answer_gate = self._answer_gate, None
            if gate is not None:
                gate[0].set()
                await gate[1].wait()
            return answer
        if edge in ("comments", "replies"):
            return self._public_reply(token, body)
        return _error(404, 100, f"Unsupported post request. Object {node} has no edge {edge}")

    async def _get_edge(self, request: web.Request) -> web.Response:
        node, edge = request.match_info["node"], request.match_info["edge"]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        self.calls.append(GraphCall("GET", node, edge, dict(request.query), token))
        scripted = self._take_scripted()
        if scripted is not None:
            return await play(scripted)
        if token not in self.accounts.messenger.values():
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if edge == "media":
            limit = int(request.query.get("limit", "25"))
            return web.json_response({"data": self.media.get(node, [])[:limit]})
        if edge == "comments":
            return web.json_response(_page(self.comments.get(node, []), request.query))
        return _error(404, 100, f"Unsupported get request. Object {node} has no edge {edge}")

    async def _get_node(self, request: web.Request) -> web.Response:
        """``GET /{media-id}``: WhatsApp's media URL, for the business token only."""
        node = request.match_info["node"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append(GraphCall("GET", node, "", dict(request.query), token))
        if token not in (WA_TOKEN, *self.accounts.messenger.values()):
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        stored = self.whatsapp_media.get(node)
        if stored is None or token != WA_TOKEN:
            message = f"Unsupported get request. Object with ID '{node}' does not exist"
            return _error(400, 100, message)
        body, mime_type = stored
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base_url}/whatsapp-media/{node}",
                "mime_type": mime_type,
                "sha256": "0" * 64,
                "file_size": len(body),
                "id": node,
            }
        )

    async def _download_media(self, request: web.Request) -> web.Response:
        """The media URL itself: refused (401) without the business token, as WhatsApp does."""
        media_id = request.match_info["media_id"]
        self.media_downloads.append(media_id)
        if request.headers.get("Authorization") != f"Bearer {WA_TOKEN}":
            return web.Response(status=401, text="Unauthorized")
        body, mime_type = self.whatsapp_media[media_id]
        return web.Response(body=body, content_type=mime_type)

    async def _debug_token(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.calls.append(GraphCall("GET", "debug_token", "", dict(request.query), auth))
        scripted = self._take_scripted()
        if scripted is not None:
            return await play(scripted)
        if auth != f"Bearer {APP_ID}|{APP_SECRET}":
            return _error(400, 190, "Invalid OAuth access token signature.")
        token = request.query.get("input_token", "")
        scopes = self.token_scopes.get(token)
        if scopes is None:
            error = {"code": 190, "message": "Invalid OAuth access token."}
            return web.json_response({"data": {"is_valid": False, "error": error, "scopes": []}})
        data = {"app_id": APP_ID, "type": "PAGE", "is_valid": True, "scopes": list(scopes)}
        return web.json_response({"data": data})

    async def _app_subscription(self, token: str | None, query: Any) -> web.Response:
        if token != f"{APP_ID}|{APP_SECRET}":
            return _error(400, 190, "Invalid OAuth access token signature.")
        url, verify_token = query.get("callback_url", ""), query.get("verify_token", "")
        try:
            check = await handshake(self._session(), url, verify_token, challenge="4455667788")
        except aiohttp.ClientError as exc:
            check = Posted(0, str(exc))
        if check != (200, "4455667788"):
            message = (
                "(#2200) Callback verification failed with the following errors: "
                f"HTTP Status Code = {check.status}; HTTP Message = {check.text[:80]}"
            )
            return _error(400, 2200, message)
        self.app_subscriptions[query.get("object", "")] = {
            "callback_url": url,
            "fields": query.get("fields", ""),
            "verify_token": verify_token,
        }
        return web.json_response({"success": True})

    def _subscribed_apps(
        self, method: str, node: str, token: str | None, query: Any
    ) -> web.Response:
        known = {**self.accounts.messenger, WABA_ID: WA_TOKEN}
        if token is None or known.get(node) != token:
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if method == "DELETE":
            self.subscriptions.pop(node, None)
        else:
            fields = query.get("subscribed_fields", "")
            self.subscriptions[node] = tuple(filter(None, fields.split(",")))
        return web.json_response({"success": True})

    def _messenger(self, node: str, token: str | None, body: dict[str, Any]) -> web.Response:
        if token is None or self.accounts.messenger.get(node) != token:
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        recipient = body.get("recipient")
        message = body.get("message")
        if not isinstance(recipient, dict) or not isinstance(message, dict):
            return _error(400, 100, "(#100) The parameter recipient is required")
        text, attachment = message.get("text"), message.get("attachment")
        if (text is None) == (attachment is None):
            return _error(400, 100, "(#100) Exactly one of text or attachment is required")
        if isinstance(text, str) and len(text) > MAX_MESSENGER_TEXT:
            return _error(400, 100, "(#100) Length of param message[text] must be less than 2000")
        comment_id = recipient.get("comment_id")
        if comment_id is not None:
            if comment_id in self.private_replies:
                return _error(400, 10900, "(#10900) Activity already replied to")
            self.private_replies.add(comment_id)
        recipient_id = recipient.get("id") or f"psid-for-{comment_id}"
        message_id = f"m_stand-in-{next(self._ids)}"
        self.message_ids.append(message_id)
        return web.json_response({"recipient_id": recipient_id, "message_id": message_id})

    def _whatsapp(self, node: str, token: str | None, body: dict[str, Any]) -> web.Response:
        if token is None or self.accounts.whatsapp.get(node) != token:
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        kind = body.get("type")
        if body.get("messaging_product") != "whatsapp" or not (
            body.get("to") or body.get("recipient")
        ):
            return _error(400, 100, "(#100) The parameter messaging_product is required.")
        if not isinstance(kind, str) or not isinstance(body.get(kind), dict):
            return _error(400, 131009, "(#131009) Parameter value is not valid")
        text = body[kind].get("body") if kind == "text" else None
        if isinstance(text, str) and len(text) > MAX_WHATSAPP_TEXT:
            return _error(400, 100, "(#100) Param text['body'] must be at most 4096 characters")
        if kind == "template":
            refused = self._template_refusal(body["template"])
            if refused is not None:
                return refused
        wamid = f"wamid.STANDIN{next(self._ids):08d}"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [
                    {"input": body.get("to") or body["recipient"], "wa_id": body.get("to")}
                ],
                "messages": [{"id": wamid}],
            }
        )

    def _template_refusal(self, template: dict[str, Any]) -> web.Response | None:
        """Meta's answers to a template it cannot send: unknown in that language (132001),
        the wrong number of parameters (132000), a parameter with new lines (132018)."""
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        expected = self.templates.get((str(template.get("name")), str(code)))
        if expected is None:
            return _error(400, 132001, "(#132001) Template name does not exist in the translation")
        components = template.get("components") or []
        parameters = [p for c in components if c.get("type") == "body" for p in c["parameters"]]
        if len(parameters) != expected:
            return _error(
                400, 132000, "(#132000) Number of parameters does not match the expected number"
            )
        for parameter in parameters:
            text = parameter.get("text", "")
            if parameter.get("type") != "text" or re.search(r"[\n\t]| {5,}", text):
                return _error(
                    400,
                    132018,
                    "(#132018) There was an issue with the parameters in your template. "
                    "Param text cannot have new-line/tab characters or more than 4 "
                    "consecutive spaces",
                )
        return None

    def _public_reply(self, token: str | None, body: dict[str, Any]) -> web.Response:
        if token not in self.accounts.messenger.values():
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if not body.get("message") and not body.get("attachment_url"):
            return _error(400, 100, "(#100) Missing message or attachment")
        return web.json_response({"id": f"690891113073877_{next(self._ids)}"})


def _page(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """Graph paging: ``limit`` items after the ``after`` cursor (an index here)."""
    start = int(query.get("after", "0"))
    limit = int(query.get("limit", "25"))
    page: dict[str, Any] = {"data": items[start : start + limit]}
    if start + limit < len(items):
        after = str(start + limit)
        page["paging"] = {"cursors": {"after": after}, "next": f"https://graph/next?after={after}"}
    return page


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(graph_error_body(code, message), status=status)
