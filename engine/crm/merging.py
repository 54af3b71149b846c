"""Merging two contacts the portal says are one person (``docs/crm.md``, "Merging").

The survivor takes every identity, its history and its leads; the merged contact stays as
a record whose ``merged_into`` names the survivor, so its old id still resolves (in API
calls, in events the portal received before). Scalar fields are the survivor's where it
has them, the merged contact's otherwise. Never automatic: only the portal merges.
"""

from __future__ import annotations

from engine.crm.records import Contact
from engine.errors import ConflictError


class SameContactError(ConflictError):
    """A merge of a contact with itself (or with one already merged into it)."""

    reason = "same_contact"


def merged(survivor: Contact, other: Contact, now: float) -> tuple[Contact, Contact]:
    """The survivor and the merged contact after ``other`` joins ``survivor``.

    Both must be live contacts (the caller resolves ids through ``merged_into`` first).
    """
    if survivor.id == other.id:
        raise SameContactError(f"contact {survivor.id!r} is already one contact with itself")
    for contact in (survivor, other):
        if contact.merged_into is not None:
            raise ConflictError(f"contact {contact.id!r} was merged into {contact.merged_into!r}")
    identities = tuple(
        sorted({*survivor.identities, *other.identities}, key=lambda identity: identity.sort_key)
    )
    leads = tuple(
        sorted(
            (
                lead.model_copy(update={"contact_id": survivor.id})
                for lead in (*survivor.leads, *other.leads)
            ),
            key=lambda lead: (lead.created_at, lead.id),
        )
    )
    duplicates = tuple(
        sorted(
            {*survivor.possible_duplicates, *other.possible_duplicates} - {survivor.id, other.id}
        )
    )
    joined = survivor.model_copy(
        update={
            "name": survivor.name or other.name,
            "identities": identities,
            "responsible_id": survivor.responsible_id or other.responsible_id,
            "updated_at": now,
            "leads": leads,
            "possible_duplicates": duplicates,
        }
    )
    gone = other.model_copy(
        update={
            "identities": (),
            "leads": (),
            "possible_duplicates": (),
            "merged_into": survivor.id,
            "updated_at": now,
        }
    )
    return joined, gone
