"""Which contact an inbound message belongs to (``docs/crm.md``, "Linking").

A message's identities (``engine.crm.sightings``) either match no contact (a new contact
is made with all of them, and a lead if the line asks), or they match. Then:

* the contact that already holds the message's **connector identity** keeps it: a
  conversation never changes contact under an operator's eyes, and one chat's history
  stays in one contact;
* otherwise, of several matching contacts, the **oldest** (then the smallest id): a
  deterministic choice that does not depend on which identity was looked up first;
* identities nobody holds yet join the chosen contact; one another contact holds stays
  there, and that contact is recorded as a possible duplicate of the chosen one. Contacts
  are never merged automatically: a shared phone can be a family's; the portal merges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from engine.crm.identities import Identity
from engine.crm.sightings import Sighting
from engine.ids import new_id

IdMaker = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Owner:
    """The live contact that holds an identity (merged contacts already resolved)."""

    contact_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one sighting belongs: an existing contact, or (None) a new one."""

    contact: Owner | None
    attach: tuple[Identity, ...]
    """Its identities nobody holds: they join the contact."""
    duplicates: tuple[str, ...]
    """Other contacts that matched: recorded, not merged."""


def decide(sighting: Sighting, owners: Mapping[Identity, Owner]) -> Decision:
    matched = {
        owner.contact_id: owner
        for owner in (owners.get(identity) for identity in sighting.identities)
        if owner is not None
    }
    chosen = owners.get(sighting.connector) or min(
        matched.values(), key=lambda o: (o.created_at, o.contact_id), default=None
    )
    chosen_id = chosen.contact_id if chosen is not None else None
    attach = tuple(dict.fromkeys(i for i in sighting.identities if i not in owners))
    duplicates = tuple(sorted(c for c in matched if c != chosen_id))
    return Decision(chosen, attach, duplicates)


@dataclass(frozen=True, slots=True)
class NewContact:
    contact_id: str
    name: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class NewLead:
    lead_id: str
    contact_id: str
    line_id: str
    created_at: float


@dataclass
class LinkChanges:
    """What a batch of links adds, for the store to write in one transaction."""

    contacts: list[NewContact] = field(default_factory=list)
    identities: list[tuple[Identity, str]] = field(default_factory=list)
    """Identity → the contact it joins."""
    leads: list[NewLead] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(chosen contact, another contact that matched too)."""
    contact_of: dict[str, str] = field(default_factory=dict)
    """Each sighting's conversation key → its contact."""


class Linker:
    """Links sightings one after another: a contact made for one is found by the next, so
    a batch links exactly as the same messages would one at a time."""

    def __init__(self, owners: Mapping[Identity, Owner], now: float, ids: IdMaker = new_id):
        self._owners = dict(owners)
        self._now = now
        self._ids = ids
        self.changes = LinkChanges()

    def link(self, sighting: Sighting, lead: bool) -> str:
        """The sighting's contact; ``lead``: open one if the contact is new."""
        decision = decide(sighting, self._owners)
        changes = self.changes
        owner = decision.contact
        if owner is None:
            owner = Owner(self._ids("cnt"), self._now)
            changes.contacts.append(NewContact(owner.contact_id, sighting.name, self._now))
            if lead:
                changes.leads.append(
                    NewLead(self._ids("lead"), owner.contact_id, sighting.line_id, self._now)
                )
        contact_id = owner.contact_id
        for identity in decision.attach:
            self._owners[identity] = owner
            changes.identities.append((identity, contact_id))
        changes.duplicates.extend((contact_id, other) for other in decision.duplicates)
        changes.contact_of[sighting.key] = contact_id
        return contact_id

    def link_all(self, sightings: Iterable[tuple[Sighting, bool]]) -> LinkChanges:
        for sighting, lead in sightings:
            self.link(sighting, lead)
        return self.changes


@dataclass(frozen=True, slots=True)
class ContactLink:
    """A conversation's customer as the router stamps their dialog: contact and lead."""

    contact_id: str
    lead_id: str | None
    """The contact's latest lead on the message's line, if it has one."""
