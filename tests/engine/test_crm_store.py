"""The CRM store on a real SQLite file: linking, contacts, merges, leads and history, kept
across a reopen of the file, and each portal's contacts its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from engine.crm.identities import Identity, connector_identity, phone_identity
from engine.crm.merging import SameContactError
from engine.crm.sightings import LinkSettings
from engine.errors import NotFoundError
from engine.events import DialogQueued, ReplySent
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.models import (
    ContactContent,
    Content,
    Customer,
    InboundMessage,
    ReplyRequest,
    Route,
    TextContent,
)
from engine.routing.plan import CustomerOwners, Plan, StreamEntry
from engine.store.records import InboxRow, dialog_ref
from engine.store.sqlite_crm import IdentityTakenError
from engine.store.sqlite_outbox import SqliteOutbox

NOW = 1_800_000_000.0
LEADS = {"support": LinkSettings(region="RU", lead=True), "sales": LinkSettings(region="RU")}
PHONE = "+79123456789"


def message(
    n: int,
    user: str,
    content: Content | None = None,
    *,
    connector: str = "tg",
    portal_id: str = "p1",
    line: str = "support",
    phone: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        id=inbound_event_id(connector, str(n)),
        route=Route(portal_id=portal_id, line_id=line, connector_id=connector, channel="telegram"),
        dialog_key=user,
        customer=Customer(channel_user_id=user, name=f"user {user}", phone=phone),
        content=content or TextContent(text=f"message {n}"),
        channel_message_id=str(n),
        channel_event_id=str(n),
        order_key=n,
        sent_at=NOW + n,
        received_at=NOW + n,
    )


def shares_phone(user: str, phone: str = PHONE) -> ContactContent:
    return ContactContent(phone=phone, channel_user_id=user)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteOutbox]:
    opened = SqliteOutbox(path)
    yield opened
    opened.close()


def arrive(store: SqliteOutbox, *messages: InboundMessage) -> list[InboxRow]:
    store.append([outbox_record(m) for m in messages], NOW)
    return store.inbox(messages[0].route.portal_id, 1000)


def link(
    store: SqliteOutbox, *messages: InboundMessage, settings: dict[str, LinkSettings] = LEADS
) -> dict[str, str]:
    """Customers' contacts by conversation key, linked as the router links them."""
    rows = arrive(store, *messages)
    links, _ = store.crm.link(messages[0].route.portal_id, rows, settings, NOW)
    return {key: link.contact_id for key, link in links.items()}


def route_in(store: SqliteOutbox, portal_id: str, contact_id: str, dialog_id: str) -> None:
    """The router's next step: the inbox rows into their dialog's stream, stamped."""
    stamp = orjson.dumps({"id": dialog_id, "contact_id": contact_id, "lead_id": None})
    rows = store.inbox(portal_id, 1000)
    entries = [
        StreamEntry(
            "evt_q" + dialog_id,
            "dialog.queued",
            dialog_id,
            rows[0].dialog_ref,
            stamp,
            NOW,
            DialogQueued(reason="new", position=1),
            contact_id=contact_id,
        ),
        *(
            StreamEntry(
                r.event_id,
                r.kind,
                dialog_id,
                r.dialog_ref,
                stamp,
                r.received_at,
                inbox_rowid=r.rowid,
                contact_id=contact_id,
            )
            for r in rows
        ),
    ]
    store.commit_plan(portal_id, Plan(entries=entries), [], [], NOW, False)


def test_a_new_customer_gets_a_contact_and_a_lead_kept_across_a_reopen(path: Path) -> None:
    store = SqliteOutbox(path)
    contacts = link(store, message(1, "42", shares_phone("42")))
    contact_id = contacts["tg/42"]
    store.close()

    reopened = SqliteOutbox(path)
    try:
        contact = reopened.crm.contact("p1", contact_id)
        assert contact.name == "user 42"
        assert [(i.kind, i.value) for i in contact.identities] == [
            ("connector", "tg/42"),
            ("phone", PHONE),
        ]
        assert [(lead.line_id, lead.status) for lead in contact.leads] == [("support", "new")]
        # The same rows linked again (the routing step did not commit): same contact, one lead.
        rows = reopened.inbox("p1", 10)
        links, _ = reopened.crm.link("p1", rows, LEADS, NOW + 5)
        assert links["tg/42"].contact_id == contact_id
        assert links["tg/42"].lead_id == contact.leads[0].id
        assert len(reopened.crm.contact("p1", contact_id).leads) == 1
    finally:
        reopened.close()


def test_the_same_phone_from_vk_links_to_the_telegram_customers_contact(
    store: SqliteOutbox,
) -> None:
    telegram = link(store, message(1, "42", shares_phone("42")))["tg/42"]
    vk = link(store, message(2, "7", connector="vk", phone="8 912 345-67-89"))["vk/7"]
    assert vk == telegram
    contact = store.crm.contact("p1", telegram)
    assert {i.value for i in contact.identities} == {"tg/42", "vk/7", PHONE}
    assert len(contact.leads) == 1  # the VK customer was not new


def test_no_lead_on_a_line_that_does_not_ask(store: SqliteOutbox) -> None:
    rows = arrive(store, message(1, "42", line="sales"))
    links, _ = store.crm.link("p1", rows, LEADS, NOW)
    assert links["tg/42"].lead_id is None
    assert store.crm.contact("p1", links["tg/42"].contact_id).leads == ()


def test_a_bad_phone_is_reported_and_the_customer_still_linked(store: SqliteOutbox) -> None:
    rows = arrive(store, message(1, "c1", connector="shop", phone="12"))
    links, refused = store.crm.link("p1", rows, LEADS, NOW)
    assert "shop/c1" in links
    assert refused == ["phone '12' is not a valid number (default region RU)"]


def test_several_matching_contacts_link_to_the_oldest_and_are_marked_possible_duplicates(
    store: SqliteOutbox,
) -> None:
    older = store.crm.create("p1", "Ann", [phone_identity(PHONE, None)], NOW - 100)
    newer = store.crm.create(
        "p1", "Ann L.", [Identity(kind="email", value="ann@example.com")], NOW - 50
    )
    custom = message(1, "c1", connector="shop", phone=PHONE)
    shares_mail = TextContent(text="ann@example.com")
    contacts = link(
        store,
        custom,
        message(2, "c2", shares_mail, connector="shop", phone=PHONE),
        settings={"support": LinkSettings(region="RU", from_text=True)},
    )
    assert contacts == {"shop/c1": older.id, "shop/c2": older.id}
    assert store.crm.contact("p1", older.id).possible_duplicates == (newer.id,)
    assert store.crm.contact("p1", newer.id).possible_duplicates == (older.id,)
    assert store.crm.contact("p1", newer.id).identities == (
        Identity(kind="email", value="ann@example.com"),
    )  # not merged: the portal decides


def test_contacts_made_by_the_portal_refuse_identities_another_holds(
    store: SqliteOutbox,
) -> None:
    ann = store.crm.create("p1", "Ann", [phone_identity(PHONE, None)], NOW)
    email = Identity(kind="email", value="x@example.com")
    with pytest.raises(
        IdentityTakenError, match=f"phone '\\{PHONE}' belongs to contact '{ann.id}'"
    ):
        store.crm.create("p1", "Bob", [email, phone_identity(PHONE, None)], NOW)
    assert store.crm.find("p1", email) is None  # all or nothing
    assert store.crm.find("p1", phone_identity(PHONE, None)) == ann


def test_portals_never_see_each_others_contacts(store: SqliteOutbox) -> None:
    mine = link(store, message(1, "42", shares_phone("42")))["tg/42"]
    theirs = link(store, message(1, "42", shares_phone("42"), portal_id="p2"))["tg/42"]
    assert mine != theirs  # the same phone and user id in another portal: another contact
    with pytest.raises(NotFoundError, match=f"no contact '{mine}' for portal 'p2'"):
        store.crm.contact("p2", mine)
    assert store.crm.find("p2", phone_identity(PHONE, None)).id == theirs  # type: ignore[union-attr]
    lead = store.crm.contact("p1", mine).leads[0]
    with pytest.raises(NotFoundError, match="no lead"):
        store.crm.set_lead_status("p2", lead.id, "junk", NOW)
    with pytest.raises(NotFoundError):
        store.crm.merge("p2", theirs, mine, NOW)


def test_a_merge_moves_identities_leads_history_and_owners_and_old_ids_resolve(
    path: Path,
) -> None:
    store = SqliteOutbox(path)
    a = link(store, message(1, "42", shares_phone("42")))["tg/42"]
    route_in(store, "p1", a, "dlg_a")
    b = link(store, message(2, "7", connector="vk"))["vk/7"]
    route_in(store, "p1", b, "dlg_b")
    owners = [CustomerOwners(a, None, "anna"), CustomerOwners(b, "chen", "boris")]
    store.commit_plan("p1", Plan(customers={o.identity: o for o in owners}), [], [], NOW, False)
    survivor, gone = store.crm.merge("p1", a, b, NOW + 10)
    store.close()

    store = SqliteOutbox(path)
    try:
        assert gone == b
        assert store.crm.contact("p1", b) == store.crm.contact("p1", a) == survivor
        assert {i.value for i in survivor.identities} == {"tg/42", "vk/7", PHONE}
        assert [lead.contact_id for lead in survivor.leads] == [a, a]
        assert survivor.responsible_id == "chen"
        assert store.crm.resolve("p1", b) == a
        live, items = store.crm.history("p1", b, 10, None)
        assert live == a
        assert {orjson.loads(item.dialog_json)["id"] for item in items} == {"dlg_a", "dlg_b"}
        with pytest.raises(SameContactError, match="already one contact"):
            store.crm.merge("p1", b, a, NOW)
        c = link(store, message(3, "9", connector="vk"))["vk/9"]
        store.crm.merge("p1", c, a, NOW + 20)  # a, and b with it, now resolve to c
        assert store.crm.resolve("p1", b) == c
        row = store._db.execute(
            "SELECT responsible_id, last_operator_id FROM customers WHERE identity = ?", (c,)
        ).fetchone()
        assert row == ("chen", "anna")
    finally:
        store.close()


def test_history_pages_newest_first_with_replies_as_sent(store: SqliteOutbox) -> None:
    contact_id = link(store, message(1, "42"), message(2, "42"))["tg/42"]
    route_in(store, "p1", contact_id, "dlg_1")
    stamp = orjson.dumps({"id": "dlg_1", "contact_id": contact_id})
    sent = ReplySent(
        reply_id="rpl_1", client_id=None, origin="operator", channel_message_ids=("9",)
    )
    request = ReplyRequest.model_validate({"content": {"kind": "text", "text": "Hello"}})
    outcome = StreamEntry(
        "evt_sent",
        "reply.sent",
        "dlg_1",
        dialog_ref("tg", "42"),
        stamp,
        NOW + 4,
        sent,
        reply_json=request.model_dump_json().encode(),
        contact_id=contact_id,
    )
    store.commit_plan("p1", Plan(entries=[outcome]), [], [], NOW, False)

    _, first = store.crm.history("p1", contact_id, 2, None)
    assert [(event.kind, event.event_id) for event in first] == [
        ("reply.sent", "evt_sent"),
        ("message.received", first[1].event_id),
    ]
    reply = orjson.loads(first[0].reply_json or b"null")
    assert reply["content"] == {"kind": "text", "text": "Hello", "markup": "bbcode"}
    _, rest = store.crm.history("p1", contact_id, 10, first[-1].event_id)
    assert [event.kind for event in rest] == ["message.received", "dialog.queued"]
    assert orjson.loads(rest[0].payload)["content"] == {"kind": "text", "text": "message 1"}
    with pytest.raises(NotFoundError, match="no event 'nope' in the history to page before"):
        store.crm.history("p1", contact_id, 10, "nope")
    with pytest.raises(NotFoundError, match=r"no contact .cnt_other."):
        store.crm.history("p1", "cnt_other", 10, None)


def test_lead_statuses_are_set_by_the_portal(store: SqliteOutbox) -> None:
    contact_id = link(store, message(1, "42"))["tg/42"]
    lead = store.crm.contact("p1", contact_id).leads[0]
    changed = store.crm.set_lead_status("p1", lead.id, "in_progress", NOW + 60)
    assert (changed.status, changed.updated_at, changed.created_at) == (
        "in_progress",
        NOW + 60,
        NOW,
    )
    with pytest.raises(NotFoundError, match="no lead 'lead_x' for portal 'p1'"):
        store.crm.set_lead_status("p1", "lead_x", "junk", NOW)


def test_a_customer_owned_before_contacts_existed_keeps_their_owners(store: SqliteOutbox) -> None:
    legacy = CustomerOwners("tg/42", "chen", "boris")  # the routing's key before contacts
    store.commit_plan("p1", Plan(customers={legacy.identity: legacy}), [], [], NOW, False)
    contact_id = link(store, message(1, "42"))["tg/42"]
    assert store.crm.contact("p1", contact_id).responsible_id == "chen"


def test_the_contact_of_a_customer_who_never_wrote_is_made_once(store: SqliteOutbox) -> None:
    identity = connector_identity("tg", "77")
    first = store.crm.contact_of("p1", identity, NOW)
    assert store.crm.contact_of("p1", identity, NOW + 1) == first
    assert link(store, message(1, "77"))["tg/77"] == first
