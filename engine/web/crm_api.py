"""The portal API's CRM calls (docs/crm.md): one route and one small handler each.

Authenticated like every portal call (``engine.web.portal_api.authenticate``: signed, fresh,
not a replay), then parsed and validated into a call model (``engine.crm.calls``) that the
portal's own actor answers (``engine.contacts``). A portal reaches only its own contacts:
another portal's contact id is 404 as an unknown one is.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from engine.api_models import ResponsibleRequest
from engine.crm.calls import (
    MAX_HISTORY_PAGE,
    CreateContact,
    CrmCall,
    FindContacts,
    GetContact,
    IdentityIn,
    LeadStatusBody,
    MergeBody,
    MergeContacts,
    NewContactBody,
    ReadHistory,
    SetLeadStatus,
    SetResponsible,
)
from engine.errors import BadRequestError, ValidationFailedError
from engine.validation import describe_validation_error
from engine.web.common import json_body, page_limit, parse_json_model
from engine.web.openapi import ApiCall, Param
from engine.web.portal_api import authenticate
from engine.web.ports import Engine

HISTORY_PAGE = 50
M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], **values: Any) -> M:
    """The model, or 422 naming what in the path or query did not validate."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailedError(describe_validation_error(exc)) from None


def identity_in(query: dict[str, str]) -> IdentityIn:
    """``?phone=``, ``?email=`` or ``?connector_id=&customer_id=``: exactly one of them."""
    given = {key for key in ("phone", "email", "connector_id") if key in query}
    if len(given) != 1 or ("connector_id" in given) != ("customer_id" in query):
        raise BadRequestError("give one of phone, email, or connector_id with customer_id")
    (kind,) = given
    if kind == "connector_id":
        value = f"{query['connector_id']}/{query['customer_id']}"
        return validated(IdentityIn, kind="connector", value=value)
    return validated(IdentityIn, kind=kind, value=query[kind])


class CrmApi:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def calls(self) -> list[ApiCall]:
        """Every CRM call, routed and described at once (``engine.web.openapi``)."""
        contact = "/api/v1/contacts/{contact_id}"
        return [
            ApiCall(
                "GET",
                "/api/v1/contacts",
                self.find,
                "Find the contact holding an identity: give exactly one of phone, email, "
                "or connector_id with customer_id.",
                query=(
                    Param("phone", "A phone number, normalized to E.164."),
                    Param("email", "An e-mail address."),
                    Param("connector_id", "A connector, with customer_id."),
                    Param("customer_id", "The customer's id in that connector's channel."),
                ),
            ),
            ApiCall(
                "POST", "/api/v1/contacts", self.create, "Create a contact.", NewContactBody, ok=201
            ),
            ApiCall("GET", contact, self.contact, "A contact (a merged id gives the survivor)."),
            ApiCall(
                "POST",
                f"{contact}/merge",
                self.merge,
                "Merge another contact into this one.",
                MergeBody,
            ),
            ApiCall(
                "PUT",
                f"{contact}/responsible",
                self.responsible,
                "The contact's responsible operator.",
                ResponsibleRequest,
            ),
            ApiCall(
                "GET",
                f"{contact}/history",
                self.history,
                "The events of all the contact's dialogs, newest first, paged.",
                query=(
                    Param("limit", "Events per page.", "integer"),
                    Param("before", "The last event id of the previous page."),
                ),
            ),
            ApiCall(
                "PUT",
                "/api/v1/leads/{lead_id}/status",
                self.lead_status,
                "A lead's status.",
                LeadStatusBody,
            ),
        ]

    async def _ask(
        self, portal_id: str, request_id: str, crm: CrmCall, status: int = 200
    ) -> web.Response:
        answer = await self._engine.portal(portal_id).crm(portal_id, request_id, crm)
        return web.Response(body=answer, status=status, content_type="application/json")

    async def find(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        identity = identity_in(dict(request.query))
        return await self._ask(portal.id, request_id, FindContacts(identity=identity))

    async def create(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(NewContactBody, await json_body(request))
        return await self._ask(portal.id, request_id, CreateContact(body=body), 201)

    async def contact(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        crm = validated(GetContact, contact_id=request.match_info["contact_id"])
        return await self._ask(portal.id, request_id, crm)

    async def merge(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(MergeBody, await json_body(request))
        survivor_id = request.match_info["contact_id"]
        crm = validated(MergeContacts, survivor_id=survivor_id, contact_id=body.contact_id)
        return await self._ask(portal.id, request_id, crm)

    async def responsible(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(ResponsibleRequest, await json_body(request))
        contact_id = request.match_info["contact_id"]
        crm = validated(SetResponsible, contact_id=contact_id, operator_id=body.operator_id)
        return await self._ask(portal.id, request_id, crm)

    async def history(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        crm = validated(
            ReadHistory,
            contact_id=request.match_info["contact_id"],
            limit=page_limit(request, HISTORY_PAGE, MAX_HISTORY_PAGE),
            before=request.query.get("before"),
        )
        return await self._ask(portal.id, request_id, crm)

    async def lead_status(self, request: web.Request) -> web.Response:
        portal, request_id = await authenticate(self._engine, request)
        body = parse_json_model(LeadStatusBody, await json_body(request))
        crm = validated(SetLeadStatus, lead_id=request.match_info["lead_id"], status=body.status)
        return await self._ask(portal.id, request_id, crm)
