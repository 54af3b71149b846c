"""The portal's API: signed calls to answer customers and read dead letters.

Every call carries ``openlines-portal-id`` and a Standard Webhooks ``v1`` signature keyed by
the portal's license key over ``METHOD path\\nbody``; the timestamp must be within 5 minutes
and the ``webhook-id`` unused (the portal's own actor remembers ids, so a replay is caught
whichever channel actor it reaches). A portal sees only its own dialogs.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from actors.http_common import json_response, parse_json_model
from actors.view import EngineView, call
from engine.config import PortalConfig
from engine.errors import AuthError, BadRequestError, NotFoundError, UnsupportedMediaTypeError
from engine.models import DialogInfo, ReplyRequest
from engine.security.webhook_signature import api_request_payload, verify_hmac
from engine.store.records import DeadLetter

PORTAL_HEADER = "openlines-portal-id"
MAX_DEAD_LETTERS_PAGE = 1000


async def authenticate(view: EngineView, request: web.Request) -> tuple[PortalConfig, str]:
    """The calling portal and its request id, or ``AuthError``."""
    portal_id = request.headers.get(PORTAL_HEADER)
    if not portal_id:
        raise AuthError(f"missing {PORTAL_HEADER} header")
    try:
        portal = view.registry.portal(portal_id)
    except NotFoundError:
        raise AuthError(f"unknown portal {portal_id!r}") from None
    body = await request.read()
    signed = verify_hmac(
        portal.license_key.encode(),
        request.headers,
        api_request_payload(request.method, request.path_qs, body),
        time.time(),
    )
    return portal, signed.message_id


async def own_dialog(view: EngineView, portal: PortalConfig, dialog_id: str) -> DialogInfo:
    dialog: DialogInfo | None = await call(view.router.dialog.remote(dialog_id))
    if dialog is None or dialog.portal_id != portal.id:
        raise NotFoundError(
            f"no dialog {dialog_id!r} for portal {portal.id!r}: the customer writes first"
        )
    return dialog


def dead_letter_json(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.event_id,
        "seq": letter.seq,
        "type": letter.kind,
        "occurred_at": letter.received_at,
        "dead_at": letter.dead_at,
        "reason": letter.reason,
        "dialog": orjson.Fragment(letter.dialog_json),
        "data": orjson.Fragment(letter.payload),
    }


class PortalApi:
    def __init__(self, view: EngineView) -> None:
        self._view = view
        self._engine_key = view.settings.engine_key_document()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/engine-key", self.engine_key),
            web.post("/api/v1/dialogs/{dialog_id}/messages", self.reply),
            web.get("/api/v1/dialogs/{dialog_id}", self.dialog),
            web.get("/api/v1/dead-letters", self.dead_letters),
        ]

    async def engine_key(self, request: web.Request) -> web.Response:
        return json_response(self._engine_key)

    async def reply(self, request: web.Request) -> web.Response:
        view = self._view
        portal, request_id = await authenticate(view, request)
        if request.content_type != "application/json":
            raise UnsupportedMediaTypeError("send the reply as application/json")
        reply = parse_json_model(ReplyRequest, await request.read())
        dialog = await own_dialog(view, portal, request.match_info["dialog_id"])
        reply_id = await call(
            view.host(portal.id).submit_reply.remote(portal.id, request_id, dialog, reply)
        )
        return json_response({"reply_id": reply_id, "dialog_id": dialog.dialog_id}, 202)

    async def dialog(self, request: web.Request) -> web.Response:
        view = self._view
        portal, request_id = await authenticate(view, request)
        await call(view.host(portal.id).check_request.remote(portal.id, request_id))
        dialog = await own_dialog(view, portal, request.match_info["dialog_id"])
        return json_response(dialog.model_dump(exclude={"is_new"}))

    async def dead_letters(self, request: web.Request) -> web.Response:
        view = self._view
        portal, request_id = await authenticate(view, request)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise BadRequestError("limit must be an integer") from None
        if not 1 <= limit <= MAX_DEAD_LETTERS_PAGE:
            raise BadRequestError(f"limit must be within 1..{MAX_DEAD_LETTERS_PAGE}")
        after = request.query.get("after")
        letters = await call(
            view.host(portal.id).dead_letters.remote(portal.id, request_id, limit, after)
        )
        return json_response(
            {
                "dead_letters": [dead_letter_json(letter) for letter in letters],
                "next_after": letters[-1].event_id if len(letters) == limit else None,
            }
        )
