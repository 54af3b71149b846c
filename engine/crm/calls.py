"""The portal's CRM calls as models: request bodies, and what the HTTP handler hands to the
portal's actor (one model per call, so the actor needs one method and the behaviour lives
in ``engine.contacts``). Bodies that do not validate are refused whole (422 naming the
field); unknown fields too. ``docs/crm.md`` documents each call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.config import ID_PATTERN
from engine.crm.identities import IdentityKind
from engine.crm.records import LeadStatus
from engine.models import Frozen

MAX_HISTORY_PAGE = 200
ContactId = Annotated[str, Field(min_length=1, max_length=100, description="A contact's id.")]


class IdentityIn(Frozen):
    """An identity as the portal writes it; the engine normalizes it (docs/crm.md)."""

    kind: IdentityKind = Field(description="connector, phone or email.")
    value: str = Field(
        min_length=1,
        max_length=300,
        description="'<connector_id>/<channel user id>', a phone number or an e-mail address.",
    )


class NewContactBody(Frozen):
    """``POST /api/v1/contacts``."""

    name: str | None = Field(default=None, max_length=500, description="The person's name.")
    identities: tuple[IdentityIn, ...] = Field(
        min_length=1, max_length=20, description="How to recognise them; none held by another."
    )


class MergeBody(Frozen):
    """``POST /api/v1/contacts/{contact_id}/merge``: the contact that joins the path's."""

    contact_id: ContactId


class LeadStatusBody(Frozen):
    """``PUT /api/v1/leads/{lead_id}/status``."""

    status: LeadStatus = Field(description="new, in_progress, converted or junk.")


class GetContact(Frozen):
    op: Literal["get"] = "get"
    contact_id: ContactId


class FindContacts(Frozen):
    op: Literal["find"] = "find"
    identity: IdentityIn


class CreateContact(Frozen):
    op: Literal["create"] = "create"
    body: NewContactBody


class MergeContacts(Frozen):
    op: Literal["merge"] = "merge"
    survivor_id: ContactId
    contact_id: ContactId


class SetResponsible(Frozen):
    op: Literal["responsible"] = "responsible"
    contact_id: ContactId
    operator_id: str | None = Field(pattern=ID_PATTERN)


class SetLeadStatus(Frozen):
    op: Literal["lead_status"] = "lead_status"
    lead_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: LeadStatus


class ReadHistory(Frozen):
    op: Literal["history"] = "history"
    contact_id: ContactId
    limit: int = Field(ge=1, le=MAX_HISTORY_PAGE)
    before: str | None = Field(default=None, max_length=100)


CrmCall = Annotated[
    GetContact
    | FindContacts
    | CreateContact
    | MergeContacts
    | SetResponsible
    | SetLeadStatus
    | ReadHistory,
    Field(discriminator="op"),
]
