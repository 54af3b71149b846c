"""Linking inbound messages to contacts, in the CRM's tables (``docs/crm.md``, "Linking").

The rules are ``engine.crm.linking``'s; this reads what they need (the messages' senders
from the inbox, who holds their identities) and writes what they decide (contacts,
identities, leads, possible duplicates), inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.crm.identities import Identity, InvalidIdentityError
from engine.crm.linking import ContactLink, IdMaker, LinkChanges, Linker, Owner
from engine.crm.sightings import LinkSettings, Sighting, sighting
from engine.models import Content, Customer
from engine.store.records import InboxRow


class _Sender(BaseModel):
    """The part of a stored ``InboundMessage`` linking reads."""

    model_config = ConfigDict(extra="ignore")
    customer: Customer
    content: Content | None = None


def link(
    db: sqlite3.Connection,
    portal_id: str,
    rows: Sequence[InboxRow],
    settings: Mapping[str, LinkSettings],
    now: float,
    ids: IdMaker,
) -> tuple[dict[str, ContactLink], list[str]]:
    """Link the customers of these inbox rows to contacts, creating contacts and leads as
    the lines' ``settings`` say; returns each customer's link by conversation key, and why
    identities were passed over.

    Idempotent: rows linked before (and not yet routed, after a crash) link again to the
    same contacts, since their identities are held by then; no lead is made twice.
    """
    sightings, refused = _sightings(db, portal_id, rows, settings)
    held = owners(db, portal_id, {i for s, _ in sightings for i in s.identities})
    changes = Linker(held, now, ids).link_all(sightings)
    _write(db, portal_id, changes, now)
    lines = {s.key: s.line_id for s, _ in sightings}
    links = {
        key: ContactLink(contact_id, _latest_lead(db, portal_id, contact_id, lines[key]))
        for key, contact_id in changes.contact_of.items()
    }
    return links, refused


def owners(
    db: sqlite3.Connection, portal_id: str, identities: Iterable[Identity]
) -> dict[Identity, Owner]:
    """Who holds each of these identities (merges move identities, so always a live one)."""
    found: dict[Identity, Owner] = {}
    for identity in identities:
        row = db.execute(
            "SELECT c.contact_id, c.created_at FROM crm_identities i JOIN crm_contacts c"
            " ON c.contact_id = i.contact_id"
            " WHERE i.portal_id = ? AND i.kind = ? AND i.value = ?",
            (portal_id, identity.kind, identity.value),
        ).fetchone()
        if row is not None:
            found[identity] = Owner(row[0], row[1])
    return found


def _sightings(
    db: sqlite3.Connection,
    portal_id: str,
    rows: Sequence[InboxRow],
    settings: Mapping[str, LinkSettings],
) -> tuple[list[tuple[Sighting, bool]], list[str]]:
    found: list[tuple[Sighting, bool]] = []
    refused: list[str] = []
    for row in rows:
        stored = db.execute(
            "SELECT payload FROM inbox WHERE rowid = ? AND portal_id = ?",
            (row.rowid, portal_id),
        ).fetchone()
        if stored is None:
            continue
        line = settings.get(row.conversation.line_id, LinkSettings())
        try:
            sender = _Sender.model_validate_json(stored[0])
            conversation = row.conversation
            seen = sighting(
                conversation.line_id,
                conversation.connector_id,
                sender.customer,
                sender.content,
                line,
            )
        except (ValidationError, InvalidIdentityError) as exc:
            # One customer that cannot be linked is not linked; the others are.
            refused.append(f"event {row.event_id}: {exc}")
            continue
        refused.extend(seen.refused)
        found.append((seen, line.lead))
    return found, refused


def _write(db: sqlite3.Connection, portal_id: str, changes: LinkChanges, now: float) -> None:
    db.executemany(
        "INSERT INTO crm_contacts VALUES (?, ?, ?, ?, ?, NULL)",
        [(c.contact_id, portal_id, c.name, c.created_at, c.created_at) for c in changes.contacts],
    )
    db.executemany(
        "INSERT INTO crm_identities VALUES (?, ?, ?, ?, ?)",
        [(portal_id, i.kind, i.value, contact_id, now) for i, contact_id in changes.identities],
    )
    db.executemany(
        "INSERT INTO crm_leads VALUES (?, ?, ?, ?, 'new', ?, ?)",
        [
            (lead.lead_id, portal_id, lead.contact_id, lead.line_id, now, now)
            for lead in changes.leads
        ],
    )
    pairs = [(a, b) for a, b in changes.duplicates] + [(b, a) for a, b in changes.duplicates]
    db.executemany(
        "INSERT OR IGNORE INTO crm_duplicates VALUES (?, ?, ?, ?)",
        [(portal_id, a, b, now) for a, b in pairs],
    )
    new = {c.contact_id for c in changes.contacts}
    # The routing kept owners under the connector identity before contacts existed
    # (docs/crm.md, "Upgrading"): a new contact carries its row over.
    db.executemany(
        "INSERT OR IGNORE INTO customers SELECT portal_id, ?, responsible_id,"
        " last_operator_id FROM customers WHERE portal_id = ? AND identity = ?",
        [
            (contact_id, portal_id, key)
            for key, contact_id in changes.contact_of.items()
            if contact_id in new
        ],
    )


def _latest_lead(
    db: sqlite3.Connection, portal_id: str, contact_id: str, line_id: str
) -> str | None:
    row = db.execute(
        "SELECT lead_id FROM crm_leads WHERE portal_id = ? AND contact_id = ? AND line_id = ?"
        " ORDER BY created_at DESC, lead_id DESC LIMIT 1",
        (portal_id, contact_id, line_id),
    ).fetchone()
    return None if row is None else cast(str, row[0])
