"""The CRM's half of a portal actor's SQLite file: contacts, identities, leads, possible
duplicates (``docs/crm.md``); linking messages to contacts is ``engine.store.sqlite_crm_links``,
the history (the dialogs' own, ``engine.store.sqlite_routing``).

It shares the file, connection and transactions of the outbox (``engine.store.sqlite_outbox``)
like the routing half does; every row carries its ``portal_id`` and every query names it, so
a pool actor's portals never see each other's contacts. Each method is one transaction on
the store's single thread, so a link, a merge or a new contact never interleave.

The responsible operator and the last operator of a contact are the routing's ``customers``
row keyed by the contact id (the router's ownership key, ``DialogState.identity``): read for
contacts, written here only where a merge combines two of them and where a new contact
carries over the row kept under its connector identity before contacts existed. Likewise the
lines a contact had dialogs on (``customer_lines``). A contact's answer to the lines' consent
requests (``crm_consents``) is written by the routing step that read it, and read here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import cast

from engine.crm.identities import Identity
from engine.crm.linking import ContactLink, IdMaker
from engine.crm.merging import merged
from engine.crm.records import Consent, Contact, Lead, LeadStatus
from engine.crm.sightings import LinkSettings
from engine.errors import ConflictError, NotFoundError
from engine.ids import new_id
from engine.store import sqlite_crm_links, sqlite_routing
from engine.store.records import HistoryEvent, InboxRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_contacts (
    contact_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, name TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, merged_into TEXT);
CREATE INDEX IF NOT EXISTS crm_contacts_merged ON crm_contacts (portal_id, merged_into)
    WHERE merged_into IS NOT NULL;
CREATE TABLE IF NOT EXISTS crm_identities (
    portal_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    contact_id TEXT NOT NULL, added_at REAL NOT NULL,
    PRIMARY KEY (portal_id, kind, value)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS crm_identities_contact ON crm_identities (portal_id, contact_id);
CREATE TABLE IF NOT EXISTS crm_leads (
    lead_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, contact_id TEXT NOT NULL,
    line_id TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS crm_leads_contact ON crm_leads (portal_id, contact_id, line_id,
    created_at);
CREATE TABLE IF NOT EXISTS crm_duplicates (
    portal_id TEXT NOT NULL, contact_id TEXT NOT NULL, other_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (portal_id, contact_id, other_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crm_consents (
    portal_id TEXT NOT NULL, contact_id TEXT NOT NULL, given INTEGER NOT NULL, at REAL NOT NULL,
    dialog_id TEXT NOT NULL, PRIMARY KEY (portal_id, contact_id)) WITHOUT ROWID;
"""

Transaction = Callable[[bool], AbstractContextManager[sqlite3.Connection]]


class IdentityTakenError(ConflictError):
    """An identity another contact of the portal holds (each is unique per portal)."""

    reason = "identity_taken"


class SqliteCrm:
    """The CRM store on the connection and transactions of one ``SqliteFile``."""

    def __init__(self, db: sqlite3.Connection, transaction: Transaction) -> None:
        self._db = db
        self._transaction = transaction

    # -- linking inbound messages ----------------------------------------------------------

    def link(
        self,
        portal_id: str,
        rows: Sequence[InboxRow],
        settings: Mapping[str, LinkSettings],
        now: float,
        ids: IdMaker = new_id,
    ) -> tuple[dict[str, ContactLink], list[str]]:
        """See ``engine.store.sqlite_crm_links.link``, in one transaction."""
        with self._transaction(False) as db:
            return sqlite_crm_links.link(db, portal_id, rows, settings, now, ids)

    # -- contacts --------------------------------------------------------------------------

    def resolve(self, portal_id: str, contact_id: str) -> str:
        """The live contact an id stands for (a merged contact's survivor); 404 if none."""
        return _resolve(self._db, portal_id, contact_id)

    def contact(self, portal_id: str, contact_id: str) -> Contact:
        """The contact, or the survivor it was merged into; ``NotFoundError`` otherwise."""
        return _contact(self._db, portal_id, _resolve(self._db, portal_id, contact_id))

    def find(self, portal_id: str, identity: Identity) -> Contact | None:
        owner = sqlite_crm_links.owners(self._db, portal_id, [identity]).get(identity)
        return None if owner is None else _contact(self._db, portal_id, owner.contact_id)

    def create(
        self,
        portal_id: str,
        name: str | None,
        identities: Sequence[Identity],
        now: float,
        ids: IdMaker = new_id,
    ) -> Contact:
        """A contact the portal makes; 409 when another contact holds one of the identities."""
        with self._transaction(True) as db:
            taken = sqlite_crm_links.owners(db, portal_id, identities)
            if taken:
                identity, owner = min(taken.items(), key=lambda item: item[0].sort_key)
                raise IdentityTakenError(
                    f"{identity.kind} {identity.value!r} belongs to contact {owner.contact_id!r}"
                )
            contact_id = ids("cnt")
            db.execute(
                "INSERT INTO crm_contacts VALUES (?, ?, ?, ?, ?, NULL)",
                (contact_id, portal_id, name, now, now),
            )
            db.executemany(
                "INSERT INTO crm_identities VALUES (?, ?, ?, ?, ?)",
                [(portal_id, i.kind, i.value, contact_id, now) for i in dict.fromkeys(identities)],
            )
            return _contact(db, portal_id, contact_id)

    def contact_of(self, portal_id: str, identity: Identity, now: float) -> str:
        """The contact holding ``identity``, made for it if none does (a portal that sets
        the responsible of a customer who has not written yet)."""
        with self._transaction(True) as db:
            owner = sqlite_crm_links.owners(db, portal_id, [identity]).get(identity)
            if owner is not None:
                return owner.contact_id
            contact_id = new_id("cnt")
            db.execute(
                "INSERT INTO crm_contacts VALUES (?, ?, NULL, ?, ?, NULL)",
                (contact_id, portal_id, now, now),
            )
            db.execute(
                "INSERT INTO crm_identities VALUES (?, ?, ?, ?, ?)",
                (portal_id, identity.kind, identity.value, contact_id, now),
            )
            return contact_id

    def merge(
        self, portal_id: str, survivor_id: str, other_id: str, now: float
    ) -> tuple[Contact, str]:
        """``other`` joins ``survivor`` (``engine.crm.merging``); returns the survivor as it
        is now and the live id that was merged (the router moves its open dialogs)."""
        with self._transaction(True) as db:
            survivor = _contact(db, portal_id, _resolve(db, portal_id, survivor_id))
            other = _contact(db, portal_id, _resolve(db, portal_id, other_id))
            joined, gone = merged(survivor, other, now)
            moves = (joined.id, portal_id, gone.id)
            for table in ("crm_identities", "crm_leads", "history"):
                db.execute(
                    f"UPDATE {table} SET contact_id = ? WHERE portal_id = ? AND contact_id = ?",
                    moves,
                )
            db.execute(
                "UPDATE crm_contacts SET name = ?, updated_at = ? WHERE contact_id = ?",
                (joined.name, now, joined.id),
            )
            db.execute(
                "UPDATE crm_contacts SET merged_into = ?, updated_at = ?"
                " WHERE portal_id = ? AND (contact_id = ? OR merged_into = ?)",
                (joined.id, now, portal_id, gone.id, gone.id),
            )
            _move_duplicates(db, portal_id, joined.id, gone.id, now)
            _combine_owners(db, portal_id, joined.id, gone.id)
            _combine_consents(db, portal_id, joined.id, gone.id)
            return _contact(db, portal_id, joined.id), gone.id

    # -- leads and history -----------------------------------------------------------------

    def set_lead_status(self, portal_id: str, lead_id: str, status: LeadStatus, now: float) -> Lead:
        with self._transaction(True) as db:
            changed = db.execute(
                "UPDATE crm_leads SET status = ?, updated_at = ?"
                " WHERE portal_id = ? AND lead_id = ?",
                (status, now, portal_id, lead_id),
            ).rowcount
            if not changed:
                raise NotFoundError(f"no lead {lead_id!r} for portal {portal_id!r}")
            return _leads(db, portal_id, "lead_id", lead_id)[0]

    def history(
        self, portal_id: str, contact_id: str, limit: int, before: str | None
    ) -> tuple[str, list[HistoryEvent]]:
        """A page of the contact's history, newest first, before the event ``before``."""
        live = _resolve(self._db, portal_id, contact_id)
        return live, sqlite_routing.contact_history(self._db, portal_id, live, limit, before)


def _resolve(db: sqlite3.Connection, portal_id: str, contact_id: str) -> str:
    row = db.execute(
        "SELECT coalesce(merged_into, contact_id) FROM crm_contacts"
        " WHERE portal_id = ? AND contact_id = ?",
        (portal_id, contact_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no contact {contact_id!r} for portal {portal_id!r}")
    return cast(str, row[0])


def _contact(db: sqlite3.Connection, portal_id: str, contact_id: str) -> Contact:
    row = db.execute(
        "SELECT name, created_at, updated_at, merged_into FROM crm_contacts"
        " WHERE portal_id = ? AND contact_id = ?",
        (portal_id, contact_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no contact {contact_id!r} for portal {portal_id!r}")
    identities = [
        Identity(kind=kind, value=value)
        for kind, value in db.execute(
            "SELECT kind, value FROM crm_identities WHERE portal_id = ? AND contact_id = ?"
            " ORDER BY kind, value",
            (portal_id, contact_id),
        )
    ]
    owners = db.execute(
        "SELECT responsible_id FROM customers WHERE portal_id = ? AND identity = ?",
        (portal_id, contact_id),
    ).fetchone()
    consent = db.execute(
        "SELECT given, at, dialog_id FROM crm_consents WHERE portal_id = ? AND contact_id = ?",
        (portal_id, contact_id),
    ).fetchone()
    duplicates = [
        other
        for (other,) in db.execute(
            "SELECT d.other_id FROM crm_duplicates d JOIN crm_contacts c"
            " ON c.contact_id = d.other_id AND c.merged_into IS NULL"
            " WHERE d.portal_id = ? AND d.contact_id = ? ORDER BY d.other_id",
            (portal_id, contact_id),
        )
    ]
    return Contact(
        id=contact_id,
        name=row[0],
        identities=tuple(identities),
        responsible_id=owners[0] if owners else None,
        created_at=row[1],
        updated_at=row[2],
        merged_into=row[3],
        leads=tuple(_leads(db, portal_id, "contact_id", contact_id)),
        possible_duplicates=tuple(duplicates),
        consent=None
        if consent is None
        else Consent(given=bool(consent[0]), at=consent[1], dialog_id=consent[2]),
    )


def _leads(db: sqlite3.Connection, portal_id: str, column: str, value: str) -> list[Lead]:
    return [
        Lead(
            id=row[0],
            contact_id=row[1],
            line_id=row[2],
            status=row[3],
            created_at=row[4],
            updated_at=row[5],
        )
        for row in db.execute(
            "SELECT lead_id, contact_id, line_id, status, created_at, updated_at FROM crm_leads"
            f" WHERE portal_id = ? AND {column} = ? ORDER BY created_at, lead_id",
            (portal_id, value),
        )
    ]


def _move_duplicates(
    db: sqlite3.Connection, portal_id: str, survivor_id: str, gone_id: str, now: float
) -> None:
    """The merged contact's possible duplicates become the survivor's; the two are one now."""
    pairs = db.execute(
        "SELECT contact_id, other_id FROM crm_duplicates WHERE portal_id = ?"
        " AND (contact_id = ? OR other_id = ?)",
        (portal_id, gone_id, gone_id),
    ).fetchall()
    db.execute(
        "DELETE FROM crm_duplicates WHERE portal_id = ? AND (contact_id = ? OR other_id = ?)",
        (portal_id, gone_id, gone_id),
    )
    renamed = {tuple(survivor_id if c == gone_id else c for c in pair) for pair in pairs}
    db.executemany(
        "INSERT OR IGNORE INTO crm_duplicates VALUES (?, ?, ?, ?)",
        [(portal_id, a, b, now) for a, b in renamed if a != b],
    )


def _combine_owners(db: sqlite3.Connection, portal_id: str, survivor_id: str, gone_id: str) -> None:
    """The survivor's responsible and last operator, each the merged one's where it has none."""
    rows = {
        identity: (responsible, last)
        for identity, responsible, last in db.execute(
            "SELECT identity, responsible_id, last_operator_id FROM customers"
            " WHERE portal_id = ? AND identity IN (?, ?)",
            (portal_id, survivor_id, gone_id),
        )
    }
    if gone_id not in rows:
        return
    mine = rows.get(survivor_id, (None, None))
    theirs = rows[gone_id]
    db.execute(
        "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
        (portal_id, survivor_id, mine[0] or theirs[0], mine[1] or theirs[1]),
    )


def _combine_consents(
    db: sqlite3.Connection, portal_id: str, survivor_id: str, gone_id: str
) -> None:
    """The survivor's consent is the latest answer either contact gave; the lines either
    had dialogs on are the survivor's (its greeting for first dialogs follows)."""
    db.execute(
        "INSERT OR REPLACE INTO crm_consents SELECT portal_id, ?, given, at, dialog_id"
        " FROM crm_consents WHERE portal_id = ? AND contact_id = ? AND at > coalesce("
        "(SELECT at FROM crm_consents WHERE portal_id = ? AND contact_id = ?), -1)",
        (survivor_id, portal_id, gone_id, portal_id, survivor_id),
    )
    db.execute(
        "DELETE FROM crm_consents WHERE portal_id = ? AND contact_id = ?", (portal_id, gone_id)
    )
    db.execute(
        "INSERT OR IGNORE INTO customer_lines SELECT portal_id, ?, line_id, first_at"
        " FROM customer_lines WHERE portal_id = ? AND identity = ?",
        (survivor_id, portal_id, gone_id),
    )
