"""What the CRM keeps: contacts, their leads, and the entries of their history.

These are the models the portal API answers with (``docs/crm.md``), built by the store from
its rows; the rules that change them are plain functions beside this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.crm.identities import Identity
from engine.models import Frozen

LeadStatus = Literal["new", "in_progress", "converted", "junk"]
LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "in_progress", "converted", "junk")


class Lead(Frozen):
    """A sales opportunity opened for a new customer on a line whose rules ask for one."""

    id: str = Field(description="The lead's id.")
    contact_id: str = Field(description="The contact it belongs to (the survivor after a merge).")
    line_id: str = Field(description="The open line the customer first wrote to.")
    status: LeadStatus = Field(
        description="new, in_progress, converted or junk; set by the portal."
    )
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds of the last status change.")


class Consent(Frozen):
    """The contact's answer to a line's request for consent to process their personal data
    (docs/line-messages.md); the latest answer counts."""

    given: bool = Field(description="true: consented; false: refused.")
    at: float = Field(description="When they answered, Unix seconds.")
    dialog_id: str = Field(description="The dialog they answered in.")


class Contact(Frozen):
    """One person, whatever channels they write from."""

    id: str = Field(description="The contact's id.")
    name: str | None = Field(description="The name the first message or the portal gave.")
    identities: tuple[Identity, ...] = Field(description="Sorted by kind, then value.")
    responsible_id: str | None = Field(
        description="The responsible operator: the CRM chain offers their dialogs to them first."
    )
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds of the last change.")
    merged_into: str | None = Field(
        default=None, description="Set on a merged contact: the survivor its id resolves to."
    )
    leads: tuple[Lead, ...] = Field(default=(), description="Its leads, oldest first.")
    possible_duplicates: tuple[str, ...] = Field(
        default=(),
        description="Contacts that matched one of its customers' messages too; merge if the same.",
    )
    consent: Consent | None = Field(
        default=None,
        description="Their answer to the consent request of a line that asks; null if none.",
    )
