"""The CRM through the running engine: Telegram and VK in, the portal stand-in out.

A customer shares their phone in Telegram, then writes from VK with the same number: both
dialogs carry the same contact. A second customer's contact is merged into the first
through the API, and that customer's next message shows the survivor. Another portal
cannot see the contact (404). Lookups, leads and history through the signed API.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update
from tests.standins.vk_api import VkApiStandIn, post_event, recorded_event

pytestmark = pytest.mark.usefixtures("ray_session")

TG_SECRET = "telegram-secret-token"
VK_SECRET = "Qw3rTy8sEcr3t"  # the recorded events carry it
VK_GROUP = 193668024
PHONE = "+79123456789"


@pytest.fixture
async def vk() -> AsyncIterator[VkApiStandIn]:
    async with VkApiStandIn() as api:
        yield api


@pytest.fixture
async def other_portal() -> AsyncIterator[PortalStandIn]:
    stand_in = PortalStandIn.create("beta")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def connectors(telegram: TelegramApiStandIn, vk: VkApiStandIn) -> list[dict[str, Any]]:
    telegram_credentials = {
        "bot_token": telegram.token,
        "secret_token": TG_SECRET,
        "api_base_url": telegram.base_url,
    }
    vk_credentials = {
        "access_token": vk.access_token,
        "secret": VK_SECRET,
        "confirmation_code": "c0nf1rm",
        "group_id": VK_GROUP,
        "api_base_url": vk.base_url,
    }
    return [
        {
            "id": "tg",
            "channel": "telegram",
            "portal": "acme",
            "line": "support",
            "credentials": telegram_credentials,
        },
        {
            "id": "vk",
            "channel": "vk",
            "portal": "acme",
            "line": "support",
            "credentials": vk_credentials,
        },
    ]


RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}]},
        "crm": {"lead": "new_customer", "default_region": "RU", "identities_from_text": True},
    }
}


def telegram_update(update_id: int, user: int, **content: Any) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": user, "is_bot": False, "first_name": "Ann"},
            "chat": {"id": user, "type": "private"},
            "date": 1776047737,
            **content,
        },
    }


def vk_message(event_no: int, user: int, text: str) -> dict[str, Any]:
    event = copy.deepcopy(recorded_event("text"))
    event["event_id"] = f"crm-{event_no:036d}"
    message = event["object"]["message"]
    message.update(from_id=user, peer_id=user, id=event_no, conversation_message_id=event_no)
    message["text"] = text
    return event


async def tell(engine: RunningEngine, update: dict[str, Any]) -> None:
    posted = await post_update(engine.session, engine.hook_url("telegram", "tg"), TG_SECRET, update)
    assert posted.status == 200, posted.text


def contacts_of(portal: PortalStandIn, dialog_id: str) -> set[str | None]:
    return {e["dialog"]["contact_id"] for e in portal.events if e["dialog"]["id"] == dialog_id}


async def test_one_contact_across_telegram_and_vk_merged_and_isolated_through_the_api(
    tmp_path: Path,
    portal: PortalStandIn,
    other_portal: PortalStandIn,
    telegram: TelegramApiStandIn,
    vk: VkApiStandIn,
) -> None:
    config = engine_config(
        tmp_path,
        [portal.portal_config(linger_ms=0), other_portal.portal_config(default_region="RU")],
        connectors(telegram, vk),
        RULES,
        clock="manual",
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = other_portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        # Telegram: the customer shares their own contact (the number without '+').
        own = {"phone_number": "79123456789", "first_name": "Ann", "user_id": 42}
        await tell(engine, telegram_update(1, 42, contact=own))
        (telegram_message,) = await portal.wait_for_events(1, "message.")
        # VK: the same person writes their number in a text (the line takes it).
        posted = await post_event(
            engine.session,
            engine.hook_url("vk", "vk"),
            vk_message(1, 228970688, "Мой номер 8 912 345-67-89"),
        )
        assert (posted.status, posted.text) == (200, "ok")
        vk_message_event = (await portal.wait_for_events(2, "message."))[1]

        telegram_dialog = telegram_message["dialog"]
        vk_dialog = vk_message_event["dialog"]
        assert telegram_dialog["id"] != vk_dialog["id"]
        contact_id = telegram_dialog["contact_id"]
        assert contact_id is not None and contact_id == vk_dialog["contact_id"]
        assert telegram_dialog["lead_id"] is not None
        assert telegram_dialog["lead_id"] == vk_dialog["lead_id"]  # one lead: VK was no stranger
        assert contacts_of(portal, vk_dialog["id"]) == {contact_id}  # dialog.queued too

        # Look the contact up by phone (the portal writes it with '+', percent-encoded).
        code, found = await engine.portal_call(
            portal, "GET", "/api/v1/contacts?phone=%2B79123456789"
        )
        assert code == 200, found
        (contact,) = found["contacts"]
        assert contact["id"] == contact_id
        assert {(i["kind"], i["value"]) for i in contact["identities"]} == {
            ("connector", "tg/42"),
            ("connector", "vk/228970688"),
            ("phone", PHONE),
        }
        code, body = await engine.portal_call(portal, "GET", "/api/v1/contacts?phone=12")
        assert (code, body["error"]) == (422, "invalid_identity"), body
        assert "has no country code and no default region is set" in body["message"]

        # Another Telegram customer, a contact of their own; the portal merges it in.
        await tell(engine, telegram_update(2, 43, text="hello, it's Ann's other account"))
        second = (await portal.wait_for_events(3, "message."))[2]["dialog"]
        assert second["contact_id"] not in (None, contact_id)
        code, survivor = await engine.portal_call(
            portal,
            "POST",
            f"/api/v1/contacts/{contact_id}/merge",
            {"contact_id": second["contact_id"]},
        )
        assert code == 200, survivor
        assert survivor["id"] == contact_id
        assert ("connector", "tg/43") in {(i["kind"], i["value"]) for i in survivor["identities"]}
        assert len(survivor["leads"]) == 2
        code, resolved = await engine.portal_call(
            portal, "GET", f"/api/v1/contacts/{second['contact_id']}"
        )
        assert (code, resolved["id"]) == (200, contact_id)
        await tell(engine, telegram_update(3, 43, text="me again"))
        again = (await portal.wait_for_events(4, "message."))[3]
        assert (again["dialog"]["id"], again["dialog"]["contact_id"]) == (second["id"], contact_id)
        code, body = await engine.portal_call(
            portal,
            "POST",
            f"/api/v1/contacts/{contact_id}/merge",
            {"contact_id": second["contact_id"]},
        )
        assert (code, body["error"]) == (409, "same_contact"), body

        # The history of the contact, newest first, in pages: both accounts' dialogs.
        history = f"/api/v1/contacts/{second['contact_id']}/history"
        code, page = await engine.portal_call(portal, "GET", f"{history}?limit=2")
        assert code == 200, page
        assert page["contact_id"] == contact_id
        assert [(e["type"], e["data"]["content"]["text"]) for e in page["events"]] == [
            ("message.received", "me again"),
            ("message.received", "hello, it's Ann's other account"),
        ]
        code, rest = await engine.portal_call(
            portal, "GET", f"{history}?limit=200&before={page['next_before']}"
        )
        assert code == 200, rest
        kinds = [event["type"] for event in rest["events"]]
        assert kinds.count("message.received") == 2 and kinds.count("dialog.queued") == 3
        assert {event["dialog"]["id"] for event in rest["events"]} == {
            telegram_dialog["id"],
            vk_dialog["id"],
            second["id"],
        }
        assert rest["next_before"] is None

        # The lead's status, set by the portal.
        code, lead = await engine.portal_call(
            portal,
            "PUT",
            f"/api/v1/leads/{telegram_dialog['lead_id']}/status",
            {"status": "in_progress"},
        )
        assert (code, lead["status"]) == (200, "in_progress"), lead
        code, body = await engine.portal_call(
            portal, "PUT", f"/api/v1/leads/{telegram_dialog['lead_id']}/status", {"status": "won"}
        )
        assert (code, body["error"]) == (422, "invalid_payload"), body

        # Another portal sees none of it.
        for method, path, data in [
            ("GET", f"/api/v1/contacts/{contact_id}", None),
            ("GET", f"/api/v1/contacts/{contact_id}/history", None),
            ("PUT", f"/api/v1/contacts/{contact_id}/responsible", {"operator_id": "anna"}),
            ("PUT", f"/api/v1/leads/{telegram_dialog['lead_id']}/status", {"status": "junk"}),
        ]:
            code, body = await engine.portal_call(other_portal, method, path, data)
            assert (code, body["error"]) == (404, "not_found"), (path, body)
        code, body = await engine.portal_call(
            other_portal, "GET", "/api/v1/contacts?phone=89123456789"
        )
        assert (code, body) == (200, {"contacts": []})
    finally:
        await stop_engine(engine)
