"""A portal's CRM as its router and its API reach it: the rules of ``engine.crm`` over the
portal's store (``engine.store.sqlite_crm``), run on the store's thread.

The router links every customer message to a contact right before routing it, so the
dialog it opens carries the contact, its lead and its owners (``docs/crm.md``). Calls that
change dialogs (a merge, a responsible) go through the router, which holds its lock around
them; the others are one store transaction each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.clock import Clock
from engine.config import PortalConfig
from engine.crm.calls import (
    CreateContact,
    CrmCall,
    FindContacts,
    GetContact,
    MergeContacts,
    ReadHistory,
    SetLeadStatus,
    SetResponsible,
)
from engine.crm.identities import Identity, connector_identity, parse_identity
from engine.crm.linking import ContactLink
from engine.crm.records import Contact
from engine.crm.sightings import LinkSettings
from engine.metrics import Counters
from engine.routing.plan import CustomerOwners
from engine.routing.rules import PortalRules
from engine.store.base import OutboxStore
from engine.store.records import InboxRow
from engine.store.threaded import ThreadedStore

if TYPE_CHECKING:
    from engine.routing.portal_router import PortalRouter

log = logging.getLogger(__name__)


class ContactBook:
    def __init__(
        self,
        portal: Callable[[], PortalConfig],
        store: ThreadedStore[OutboxStore],
        clock: Clock,
        counters: Counters,
    ) -> None:
        self._portal = portal
        self._store = store
        self._clock = clock
        self._counters = counters

    @property
    def portal_id(self) -> str:
        return self._portal().id

    def settings(self, rules: PortalRules, line_ids: Iterable[str]) -> dict[str, LinkSettings]:
        """Each line's linking settings: its rules' ``crm`` section, else the portal's region."""
        region = self._portal().default_region
        found: dict[str, LinkSettings] = {}
        for line_id in line_ids:
            line = rules.line(line_id)
            if line is None:
                found[line_id] = LinkSettings(region=region)
                continue
            crm = line.crm
            found[line_id] = LinkSettings(
                region=crm.default_region or region,
                lead=crm.lead == "new_customer",
                from_text=crm.identities_from_text,
            )
        return found

    async def link(self, rows: Sequence[InboxRow], rules: PortalRules) -> dict[str, ContactLink]:
        """The contact of each of these rows' customers, by conversation key."""
        if not rows:
            return {}
        settings = self.settings(rules, {row.conversation.line_id for row in rows})
        crm = self._store.store.crm
        links, refused = await self._store.call(
            crm.link, self.portal_id, rows, settings, self._clock.now()
        )
        if refused:
            log.info("portal %s: identities not linked: %s", self.portal_id, "; ".join(refused))
            self._counters.inc(
                "openlines_crm_identities_refused_total", len(refused), portal=self.portal_id
            )
        return links

    async def resolve(self, contact_id: str) -> str:
        return await self._store.call(self._store.store.crm.resolve, self.portal_id, contact_id)

    async def contact_of(self, connector_id: str, customer_id: str) -> str:
        identity = connector_identity(connector_id, customer_id)
        crm = self._store.store.crm
        return await self._store.call(crm.contact_of, self.portal_id, identity, self._clock.now())

    async def owner_key(self, connector_id: str, customer_id: str) -> str:
        """How ownership and blocks know the customer: their contact's id, or their
        connector identity when no contact holds it (``DialogState.identity``)."""
        identity = connector_identity(connector_id, customer_id)
        crm = self._store.store.crm
        contact = await self._store.call(crm.find, self.portal_id, identity)
        return contact.id if contact is not None else f"{connector_id}/{customer_id}"

    async def merge(self, survivor_id: str, contact_id: str) -> tuple[Contact, str]:
        crm = self._store.store.crm
        return await self._store.call(
            crm.merge, self.portal_id, survivor_id, contact_id, self._clock.now()
        )

    def identity(self, kind: str, value: str) -> Identity:
        """An identity the portal wrote, normalized with the portal's default region."""
        return parse_identity(kind, value, self._portal().default_region)

    async def answer(self, call: CrmCall) -> dict[str, Any]:
        """The calls that change no dialog: look-ups, new contacts, leads, history."""
        crm = self._store.store.crm
        portal_id, now = self.portal_id, self._clock.now()
        if isinstance(call, GetContact):
            return _json(await self._store.call(crm.contact, portal_id, call.contact_id))
        if isinstance(call, FindContacts):
            identity = self.identity(call.identity.kind, call.identity.value)
            found = await self._store.call(crm.find, portal_id, identity)
            return {"contacts": [] if found is None else [_json(found)]}
        if isinstance(call, CreateContact):
            identities = [self.identity(i.kind, i.value) for i in call.body.identities]
            created = await self._store.call(crm.create, portal_id, call.body.name, identities, now)
            return _json(created)
        if isinstance(call, SetLeadStatus):
            lead = await self._store.call(
                crm.set_lead_status, portal_id, call.lead_id, call.status, now
            )
            return lead.model_dump(mode="json")
        if isinstance(call, ReadHistory):
            live, events = await self._store.call(
                crm.history, portal_id, call.contact_id, call.limit, call.before
            )
            return {
                "contact_id": live,
                "events": [event.as_json() for event in events],
                "next_before": events[-1].event_id if len(events) == call.limit else None,
            }
        raise TypeError(f"{type(call).__name__} changes dialogs: ask the router")


async def answer(router: PortalRouter, call: CrmCall) -> dict[str, Any]:
    """One CRM call of the portal API, whichever part serves it."""
    if isinstance(call, MergeContacts):
        return _json(await router.merge_contacts(call.survivor_id, call.contact_id))
    if isinstance(call, SetResponsible):
        contact_id = await router.set_contact_responsible(call.contact_id, call.operator_id)
        return await router.contacts.answer(GetContact(contact_id=contact_id))
    return await router.contacts.answer(call)


def dialog_owners(
    customers: Iterable[str],
    links: Mapping[str, ContactLink],
    found: Mapping[str, CustomerOwners],
) -> dict[str, CustomerOwners]:
    """What a new dialog of each customer (by conversation key) starts with: its contact,
    lead, the contact's responsible and last operator, its consent and the lines it had
    dialogs on. A customer who could not be linked keeps the owners of their connector
    identity (routing before contacts)."""
    owners: dict[str, CustomerOwners] = {}
    for key in customers:
        link = links.get(key)
        if link is None:
            if key in found:
                owners[key] = found[key]
            continue
        kept = found.get(link.contact_id)
        owners[key] = CustomerOwners(
            link.contact_id,
            kept.responsible_id if kept else None,
            kept.last_operator_id if kept else None,
            link.contact_id,
            link.lead_id,
            consent=kept.consent if kept else "unknown",
            lines=kept.lines if kept else frozenset(),
        )
    return owners


def _json(contact: Contact) -> dict[str, Any]:
    return contact.model_dump(mode="json")
