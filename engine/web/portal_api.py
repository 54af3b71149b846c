"""The portal's API: signed calls to answer customers, work dialogs, manage operators'
presence and CRM ownership, read routing explanations and dead letters.

Every call carries ``openlines-portal-id`` and a Standard Webhooks ``v1`` signature keyed by
the portal's license key over ``METHOD path\\nbody``; the timestamp must be within 5 minutes
and the ``webhook-id`` unused (the portal's own actor remembers ids, so a replay is caught
whichever channel actor it reaches). A portal sees only its own dialogs: every call goes to
the portal's own actor, which answers 404 for a dialog it does not hold.
"""

from __future__ import annotations

import re
import time

import orjson
from aiohttp import web

from engine.api_models import (
    CreateQuickAnswerCall,
    DeclineCall,
    DeleteQuickAnswerCall,
    FinishRequest,
    HistoryCall,
    InviteCall,
    JoinCall,
    LeaveCall,
    LineQueueCall,
    OperatorAction,
    OperatorDialogsCall,
    OperatorProfileCall,
    OperatorStatusRequest,
    PinCall,
    PortalCall,
    QuickAnswersCall,
    ReplyBody,
    ResponsibleRequest,
    StatsCall,
    TransferCall,
    UnblockCall,
    UnpinCall,
    UpdateQuickAnswerCall,
)
from engine.config import ID_PATTERN
from engine.errors import AuthError, BadRequestError, NotFoundError
from engine.registry import PortalKeys
from engine.security.sealing import PORTAL_ID_HEADER
from engine.security.webhook_signature import api_request_payload, verify_hmac
from engine.store.records import DeadLetter
from engine.web.common import (
    json_body,
    json_response,
    page_limit,
    parse_call,
    parse_json,
    parse_json_model,
)
from engine.web.openapi import ApiCall, Param
from engine.web.ports import Engine

MAX_DEAD_LETTERS_PAGE = 1000
MAX_DECISIONS_PAGE = 200
ID_RE = re.compile(ID_PATTERN)


async def authenticate(engine: Engine, request: web.Request) -> tuple[PortalKeys, str]:
    """The calling portal and its request id, or ``AuthError``."""
    portal_id = request.headers.get(PORTAL_ID_HEADER)
    if not portal_id:
        raise AuthError(f"missing {PORTAL_ID_HEADER} header")
    try:
        portal = engine.registry.portal(portal_id)
    except NotFoundError:
        raise AuthError(f"unknown portal {portal_id!r}") from None
    body = await request.read()
    signed = verify_hmac(
        portal.license_key.encode(),
        request.headers,
        # The request target byte for byte as sent (docs/protocol.md): aiohttp's ``path_qs``
        # is decoded, so a correctly signed ``dlg%5F...`` would not match it.
        api_request_payload(request.method, request.raw_path, body),
        time.time(),
    )
    return portal, signed.message_id


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
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def calls(self) -> list[ApiCall]:
        """Every call of this API, routed and described at once (``engine.web.openapi``)."""
        dialog = "/api/v1/dialogs/{dialog_id}"
        limit = Param("limit", "Items per page.", "integer")
        return [
            ApiCall(
                "GET",
                "/api/v1/engine-key",
                self.engine_key,
                "The engine's Ed25519 public key, to verify deliveries (unsigned).",
                signed=False,
            ),
            ApiCall(
                "POST",
                f"{dialog}/messages",
                self.reply,
                "Answer the customer; 202 once the reply is stored, its outcome follows as "
                "reply.sent or reply.failed.",
                ReplyBody,
                ok=202,
                answer="{reply_id, dialog_id}",
            ),
            ApiCall("GET", dialog, self.dialog, "The dialog as it stands.", answer="A dialog."),
            ApiCall("POST", f"{dialog}/accept", self.accept, "Accept an offer.", OperatorAction),
            ApiCall("POST", f"{dialog}/skip", self.skip, "Pass an offer on.", OperatorAction),
            ApiCall("POST", f"{dialog}/finish", self.finish, "Finish the dialog.", FinishRequest),
            ApiCall(
                "GET",
                f"{dialog}/decisions",
                self.decisions,
                "The routing decisions about the dialog and why it waits.",
                query=(limit,),
            ),
            ApiCall(
                "PUT",
                "/api/v1/operators/{operator_id}/status",
                self.operator_status,
                "An operator's status and work day.",
                OperatorStatusRequest,
            ),
            ApiCall(
                "GET",
                "/api/v1/lines/{line_id}/operators",
                self.line_operators,
                "The line's operators with their status and load.",
            ),
            ApiCall(
                "PUT",
                "/api/v1/customers/{connector_id}/{customer_id}/responsible",
                self.responsible,
                "The customer's responsible operator (their CRM contact's).",
                ResponsibleRequest,
            ),
            ApiCall(
                "GET",
                "/api/v1/dead-letters",
                self.dead_letters,
                "Events given up on after their TTL, oldest first.",
                query=(limit, Param("after", "The last id of the previous page.")),
            ),
            # The operator's workflow: carried out by engine.routing.operator_calls
            # (docs/routing.md, "The operator API").
            ApiCall(
                "POST", f"{dialog}/decline", self.decline, "Decline (spam or refused).", DeclineCall
            ),
            ApiCall("POST", f"{dialog}/pin", self.pin, "Pin it to its operator.", PinCall),
            ApiCall("POST", f"{dialog}/unpin", self.unpin, "Unpin it.", UnpinCall),
            ApiCall(
                "POST",
                f"{dialog}/transfer",
                self.transfer,
                "Transfer to an operator or to another line.",
                TransferCall,
            ),
            ApiCall("POST", f"{dialog}/invite", self.invite, "Invite an operator.", InviteCall),
            ApiCall("POST", f"{dialog}/join", self.join, "A supervisor joins silently.", JoinCall),
            ApiCall("POST", f"{dialog}/leave", self.leave, "A participant leaves.", LeaveCall),
            ApiCall(
                "GET", f"{dialog}/history", self.history, "The dialog's events, paged.", HistoryCall
            ),
            ApiCall(
                "GET",
                "/api/v1/operators/{operator_id}/dialogs",
                self.operator_dialogs,
                "The operator's open dialogs.",
                OperatorDialogsCall,
            ),
            ApiCall(
                "PUT",
                "/api/v1/operators/{operator_id}/profile",
                self.operator_profile,
                "What customers see of the operator.",
                OperatorProfileCall,
            ),
            ApiCall(
                "GET",
                "/api/v1/lines/{line_id}/queue",
                self.line_queue,
                "The line's waiting dialogs in queue order.",
                LineQueueCall,
            ),
            ApiCall(
                "GET",
                "/api/v1/lines/{line_id}/quick-answers",
                self.quick_answers,
                "The line's quick answers.",
                QuickAnswersCall,
            ),
            ApiCall(
                "POST",
                "/api/v1/lines/{line_id}/quick-answers",
                self.create_quick_answer,
                "Add a quick answer.",
                CreateQuickAnswerCall,
                ok=201,
            ),
            ApiCall(
                "PUT",
                "/api/v1/quick-answers/{answer_id}",
                self.update_quick_answer,
                "Change a quick answer.",
                UpdateQuickAnswerCall,
            ),
            ApiCall(
                "DELETE",
                "/api/v1/quick-answers/{answer_id}",
                self.delete_quick_answer,
                "Delete a quick answer.",
                DeleteQuickAnswerCall,
            ),
            ApiCall(
                "DELETE",
                "/api/v1/customers/{connector_id}/{customer_id}/block",
                self.unblock,
                "Let a blocked customer open dialogs again.",
                UnblockCall,
            ),
            ApiCall(
                "GET",
                "/api/v1/stats",
                self.stats,
                "Statistics of a range: dialogs received, answered, missed, transferred, "
                "declined and closed, answer times, ratings, load (docs/statistics.md).",
                StatsCall,
            ),
        ]

    async def engine_key(self, request: web.Request) -> web.Response:
        return json_response(self._engine.engine_key)

    async def reply(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        reply = parse_json_model(ReplyBody, await json_body(request))
        dialog_id = request.match_info["dialog_id"]
        reply_id = await self._engine.portal(portal.id).reply(
            portal.id, request_id, dialog_id, reply
        )
        return json_response({"reply_id": reply_id, "dialog_id": dialog_id}, 202)

    async def dialog(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        dialog_id = request.match_info["dialog_id"]
        view = await self._engine.portal(portal.id).dialog(portal.id, request_id, dialog_id)
        return json_response(view)

    async def _action(self, request: web.Request, action: str) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = await json_body(request)
        if action == "finish":
            operator_id = parse_json_model(FinishRequest, body).operator_id or ""
        else:
            operator_id = parse_json_model(OperatorAction, body).operator_id
        view = await self._engine.portal(portal.id).dialog_action(
            portal.id, request_id, request.match_info["dialog_id"], action, operator_id
        )
        return json_response(view)

    async def accept(self, request: web.Request) -> web.Response:
        return await self._action(request, "accept")

    async def skip(self, request: web.Request) -> web.Response:
        return await self._action(request, "skip")

    async def finish(self, request: web.Request) -> web.Response:
        return await self._action(request, "finish")

    async def decisions(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        limit = page_limit(request, 20, MAX_DECISIONS_PAGE)
        explained = await self._engine.portal(portal.id).explain(
            portal.id, request_id, request.match_info["dialog_id"], limit
        )
        return json_response(explained)

    async def operator_status(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(OperatorStatusRequest, await json_body(request))
        operator_id = request.match_info["operator_id"]
        if not ID_RE.match(operator_id):
            raise BadRequestError(f"operator id {operator_id!r} is not an id")
        working = None if body.work_day is None else body.work_day == "started"
        result = await self._engine.portal(portal.id).set_operator(
            portal.id, request_id, operator_id, body.status, working
        )
        return json_response(result)

    async def line_operators(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        line_id = request.match_info["line_id"]
        if line_id not in portal.line_ids():
            raise NotFoundError(f"portal {portal.id!r} has no line {line_id!r}")
        operators = await self._engine.portal(portal.id).line_operators(
            portal.id, request_id, line_id
        )
        return json_response({"line_id": line_id, "operators": operators})

    async def responsible(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(ResponsibleRequest, await json_body(request))
        connector_id = request.match_info["connector_id"]
        connector = self._engine.registry.connectors.get(connector_id)
        if connector is None or connector.portal != portal.id:
            raise NotFoundError(f"portal {portal.id!r} has no connector {connector_id!r}")
        customer_id = request.match_info["customer_id"]
        await self._engine.portal(portal.id).set_responsible(
            portal.id, request_id, connector_id, customer_id, body.operator_id
        )
        return json_response(
            {
                "connector_id": connector_id,
                "customer_id": customer_id,
                "responsible_id": body.operator_id,
            }
        )

    async def dead_letters(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        limit = page_limit(request, 100, MAX_DEAD_LETTERS_PAGE)
        after = request.query.get("after")
        letters = await self._engine.portal(portal.id).dead_letters(
            portal.id, request_id, limit, after
        )
        return json_response(
            {
                "dead_letters": [dead_letter_json(letter) for letter in letters],
                "next_after": letters[-1].event_id if len(letters) == limit else None,
            }
        )

    # -- the operator's workflow ----------------------------------------------------------------

    async def _operate(self, request: web.Request, model: type[PortalCall]) -> web.Response:
        """Authenticate, parse the call (path, query and JSON body, if any) into its model,
        and have the portal's own actor carry it out."""
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json(await json_body(request)) if request.body_exists else None
        portal_call = parse_call(model, body, dict(request.query), dict(request.match_info))
        status, answer = await self._engine.portal(portal.id).operate(
            portal.id, request_id, portal_call
        )
        return web.Response(body=answer, status=status, content_type="application/json")

    async def decline(self, request: web.Request) -> web.Response:
        return await self._operate(request, DeclineCall)

    async def pin(self, request: web.Request) -> web.Response:
        return await self._operate(request, PinCall)

    async def unpin(self, request: web.Request) -> web.Response:
        return await self._operate(request, UnpinCall)

    async def transfer(self, request: web.Request) -> web.Response:
        return await self._operate(request, TransferCall)

    async def invite(self, request: web.Request) -> web.Response:
        return await self._operate(request, InviteCall)

    async def join(self, request: web.Request) -> web.Response:
        return await self._operate(request, JoinCall)

    async def leave(self, request: web.Request) -> web.Response:
        return await self._operate(request, LeaveCall)

    async def history(self, request: web.Request) -> web.Response:
        return await self._operate(request, HistoryCall)

    async def operator_dialogs(self, request: web.Request) -> web.Response:
        return await self._operate(request, OperatorDialogsCall)

    async def operator_profile(self, request: web.Request) -> web.Response:
        return await self._operate(request, OperatorProfileCall)

    async def line_queue(self, request: web.Request) -> web.Response:
        return await self._operate(request, LineQueueCall)

    async def quick_answers(self, request: web.Request) -> web.Response:
        return await self._operate(request, QuickAnswersCall)

    async def create_quick_answer(self, request: web.Request) -> web.Response:
        return await self._operate(request, CreateQuickAnswerCall)

    async def update_quick_answer(self, request: web.Request) -> web.Response:
        return await self._operate(request, UpdateQuickAnswerCall)

    async def delete_quick_answer(self, request: web.Request) -> web.Response:
        return await self._operate(request, DeleteQuickAnswerCall)

    async def unblock(self, request: web.Request) -> web.Response:
        return await self._operate(request, UnblockCall)

    async def stats(self, request: web.Request) -> web.Response:
        return await self._operate(request, StatsCall)
