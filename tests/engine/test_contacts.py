"""The CRM inside a portal's router, driven through a real ``MailboxHost``: a real SQLite
file, the portal stand-in receiving sealed batches, a manual clock, no Ray.

A customer who writes from Telegram and from VK is one contact and both dialogs say so;
the contact's responsible gets its dialogs on every channel; a merge moves open dialogs
and history to the survivor; the history reads back what the portal received."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.api_models import ReplyBody
from engine.contacts import answer
from engine.crm.calls import (
    CreateContact,
    FindContacts,
    GetContact,
    IdentityIn,
    MergeContacts,
    NewContactBody,
    ReadHistory,
    SetLeadStatus,
    SetResponsible,
)
from engine.delivery.host import MailboxHost
from engine.errors import NotFoundError
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.models import (
    ContactContent,
    Content,
    Customer,
    InboundMessage,
    Route,
    TextContent,
)
from engine.routing.rules import load_rules
from engine.store.records import dialog_ref
from tests.engine.conftest import (
    LINE_ID,
    RULES,
    TG_CONNECTOR,
    VK_CONNECTOR,
    HostKit,
    eventually,
    write_rules,
)
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn

PHONE = "+79123456789"
CRM_RULES = "crm:\n  lead: new_customer\n  default_region: RU\n  identities_from_text: true\n"


@pytest.fixture
async def host(kit: HostKit, portal: PortalStandIn, tmp_path: Path) -> MailboxHost:
    rules_dir = tmp_path / "crm_rules"
    write_rules(rules_dir, {"p1-support.yaml": RULES["p1-support.yaml"] + CRM_RULES})
    kit.rules = load_rules(rules_dir, 1)
    # The line reads numbers as Russian, the portal's own calls as German (docs/crm.md).
    return await kit.host(kit.config(portal, linger_ms=0, default_region="DE"))


def message(
    kit: HostKit, n: int, user: str, content: Content, connector: str = TG_CONNECTOR
) -> InboundMessage:
    channel = "vk" if connector == VK_CONNECTOR else "telegram"
    return InboundMessage(
        id=inbound_event_id(connector, f"{user}-{n}"),
        route=Route(portal_id="p1", line_id=LINE_ID, connector_id=connector, channel=channel),
        dialog_key=user,
        customer=Customer(channel_user_id=user, name=f"user {user}"),
        content=content,
        channel_message_id=str(n),
        channel_event_id=f"{user}-{n}",
        order_key=n,
        sent_at=kit.clock.now(),
        received_at=kit.clock.now(),
    )


async def write(host: MailboxHost, *messages: InboundMessage) -> None:
    """Customers write; returns once the router has put every message into its dialog."""
    await host.append([outbox_record(m) for m in messages])
    board = (await host.router("p1")).dispatcher.board
    refs = {dialog_ref(m.route.connector_id, m.dialog_key) for m in messages}
    await eventually(lambda: refs <= set(board.open_by_ref), what="dialogs open")


def contact_of(host: MailboxHost, connector: str, user: str) -> str | None:
    hosted = host.started("p1")  # customers wrote: the portal runs
    assert hosted is not None
    board = hosted.router.dispatcher.board
    return board.dialogs[board.open_by_ref[dialog_ref(connector, user)]].contact_id


async def test_a_customer_on_telegram_and_vk_is_one_contact_and_every_event_says_so(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    shared = ContactContent(phone="79123456789", first_name="Ann", channel_user_id="42")
    await write(host, message(kit, 1, "42", shared))
    await write(
        host, message(kit, 1, "7", TextContent(text="мой номер 8 912 345-67-89"), VK_CONNECTOR)
    )
    events = await portal.wait_for_events(4)

    contact_ids = {event["dialog"]["contact_id"] for event in events}
    lead_ids = {event["dialog"]["lead_id"] for event in events}
    assert len({event["dialog"]["id"] for event in events}) == 2
    assert len(contact_ids) == 1 and None not in contact_ids
    assert len(lead_ids) == 1 and None not in lead_ids  # one lead: the VK customer was not new
    (contact_id,) = contact_ids
    contact = await (await host.router("p1")).contacts.answer(GetContact(contact_id=contact_id))
    assert [(i["kind"], i["value"]) for i in contact["identities"]] == [
        ("connector", f"{TG_CONNECTOR}/42"),
        ("connector", f"{VK_CONNECTOR}/7"),
        ("phone", PHONE),
    ]
    assert [(lead["id"], lead["status"]) for lead in contact["leads"]] == [(lead_ids.pop(), "new")]


async def test_the_contacts_responsible_gets_its_dialogs_on_every_channel(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    for operator in ("op-a", "op-b", "op-c"):
        await router.set_operator(operator, "online", None)
    # The old call, by connector and customer, before the customer ever wrote.
    await router.set_responsible(TG_CONNECTOR, "42", "op-c")
    shared = ContactContent(phone=PHONE, channel_user_id="42")
    await write(host, message(kit, 1, "42", shared))
    await write(host, message(kit, 1, "7", TextContent(text=f"it is me, {PHONE}"), VK_CONNECTOR))
    offers = await portal.wait_for_events(2, "dialog.offered")
    assert [o["data"]["operator_ids"] for o in offers] == [["op-c"], ["op-c"]]
    assert offers[0]["dialog"]["contact_id"] == offers[1]["dialog"]["contact_id"]
    # A contact the portal made, its responsible set by the contact's id.
    identity = IdentityIn(kind="connector", value=f"{VK_CONNECTOR}/9")
    made = await answer(router, CreateContact(body=NewContactBody(identities=(identity,))))
    changed = await answer(router, SetResponsible(contact_id=made["id"], operator_id="op-b"))
    assert changed["responsible_id"] == "op-b"
    await write(host, message(kit, 1, "9", TextContent(text="hello"), VK_CONNECTOR))
    offers = await portal.wait_for_events(3, "dialog.offered")
    assert offers[2]["data"]["operator_ids"] == ["op-b"]
    assert offers[2]["dialog"]["contact_id"] == made["id"]


async def test_a_merge_moves_open_dialogs_history_and_leads_to_the_survivor(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    await write(host, message(kit, 1, "42", TextContent(text="hello")))
    await write(host, message(kit, 1, "7", TextContent(text="hi"), VK_CONNECTOR))
    telegram, vk = contact_of(host, TG_CONNECTOR, "42"), contact_of(host, VK_CONNECTOR, "7")
    assert telegram and vk and telegram != vk

    survivor = await answer(router, MergeContacts(survivor_id=telegram, contact_id=vk))
    assert survivor["id"] == telegram
    assert len(survivor["leads"]) == 2
    assert contact_of(host, VK_CONNECTOR, "7") == telegram
    await write(host, message(kit, 2, "7", TextContent(text="still me"), VK_CONNECTOR))
    await portal.wait_for_events(5)
    assert portal.events[-1]["dialog"]["contact_id"] == telegram  # the VK dialog's next event
    old = await answer(router, GetContact(contact_id=vk))
    assert old["id"] == telegram  # the merged id resolves
    history = orjson.loads(orjson.dumps(await answer(router, ReadHistory(contact_id=vk, limit=10))))
    assert history["contact_id"] == telegram
    texts = [
        e["data"]["content"]["text"] for e in history["events"] if e["type"] == "message.received"
    ]
    assert texts == ["still me", "hi", "hello"]


async def test_history_pages_through_what_the_portal_received_and_the_replies(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    kit.add_telegram(telegram)
    router = await host.router("p1")
    await write(
        host,
        message(kit, 1, "42", TextContent(text="one")),
        message(kit, 2, "42", TextContent(text="two")),
    )
    dialog_id = (await portal.wait_for_events(3))[0]["dialog"]["id"]
    reply = ReplyBody.model_validate({"content": {"kind": "text", "text": "answer"}})
    await router.reply(dialog_id, reply)
    await portal.wait_for_events(1, "reply.")
    contact_id = contact_of(host, TG_CONNECTOR, "42")
    assert contact_id is not None

    first = orjson.loads(
        orjson.dumps(await answer(router, ReadHistory(contact_id=contact_id, limit=2)))
    )

    assert [event["type"] for event in first["events"]] == ["reply.sent", "message.received"]
    assert first["events"][0]["reply"]["content"]["text"] == "answer"
    assert first["events"][0]["dialog"]["id"] == dialog_id
    assert first["events"][1]["data"]["content"]["text"] == "two"
    rest = await answer(
        router, ReadHistory(contact_id=contact_id, limit=10, before=first["next_before"])
    )
    assert [event["type"] for event in rest["events"]][-2:] == [
        "message.received",
        "dialog.queued",
    ]
    assert rest["next_before"] is None


async def test_contacts_the_portal_makes_link_the_customers_who_write_later(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    router = await host.router("p1")
    made = await answer(
        router,
        CreateContact(
            body=NewContactBody(
                name="Ann", identities=(IdentityIn(kind="phone", value="0151 12345678"),)
            )
        ),
    )
    assert made["identities"] == [{"kind": "phone", "value": "+4915112345678"}]
    shared = ContactContent(phone="4915112345678", channel_user_id="42")
    await write(host, message(kit, 1, "42", shared))
    assert contact_of(host, TG_CONNECTOR, "42") == made["id"]
    found = await answer(
        router, FindContacts(identity=IdentityIn(kind="connector", value=f"{TG_CONNECTOR}/42"))
    )
    assert [c["id"] for c in found["contacts"]] == [made["id"]]
    assert found["contacts"][0]["leads"] == []  # not a new customer: the portal knew them
    with pytest.raises(NotFoundError, match="no lead 'lead_x'"):
        await answer(router, SetLeadStatus(lead_id="lead_x", status="junk"))


async def test_contacts_survive_a_restart_of_the_portals_host(
    kit: HostKit, host: MailboxHost, portal: PortalStandIn
) -> None:
    shared = ContactContent(phone=PHONE, channel_user_id="42")
    await write(host, message(kit, 1, "42", shared))
    before = contact_of(host, TG_CONNECTOR, "42")
    await kit.close_host(host)

    again = await kit.host(kit.config(portal, linger_ms=0, default_region="DE"))
    await write(again, message(kit, 1, "7", TextContent(text=f"me: {PHONE}"), VK_CONNECTOR))
    assert contact_of(again, VK_CONNECTOR, "7") == before
    contact = await answer((await again.router("p1")), GetContact(contact_id=before or ""))
    assert len(contact["leads"]) == 1
