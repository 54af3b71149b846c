"""The webhook, portal-API and admin-API handlers, tested in one process without Ray
(``tests.engine.one_process``): from a provider's request to the portal and back, and every
refusal a clear answer that stores nothing and fails no one else's request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from engine.clock import ManualClock
from engine.web.middleware import RETRY_AFTER_S
from tests.engine.conftest import write_rules
from tests.engine.one_process import HOST, Served
from tests.engine.web_kit import RULES, SECRET, admin, portal_call, post_update, update
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import SECRET_HEADER, TelegramApiStandIn

# -- webhooks ------------------------------------------------------------------------------


async def test_a_webhook_is_acknowledged_and_reaches_the_portal_then_a_reply_the_customer(
    served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    assert (await post_update(served, update(1, 42, "Привет 👋")))[0] == 200

    [event] = await portal.wait_for_events(1, "message.")
    assert event["data"]["content"]["text"] == "Привет 👋"
    status, body = await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{event['dialog']['id']}/messages",
        {"content": {"kind": "text", "text": "Здравствуйте"}, "client_id": "c-1"},
    )
    assert status == 202, body
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent" and sent["data"]["client_id"] == "c-1"
    assert [call.params["text"] for call in telegram.calls_to("sendMessage")] == ["Здравствуйте"]


@pytest.mark.parametrize(
    ("body", "headers", "secret", "status", "reason"),
    [
        (update(2, 42, "x"), {}, "wrong-secret", 401, "bad_signature"),
        (update(2, 42, "x"), {}, None, 401, "bad_signature"),
        (b"{not json", {}, SECRET, 400, "bad_request"),
        ({"update_id": "two"}, {}, SECRET, 422, "invalid_payload"),
        (update(2**63, 42, "x"), {}, SECRET, 200, None),  # ignored: Telegram would retry
        (update(2, 42, "x"), {"Content-Type": "text/plain"}, SECRET, 415, "unsupported_media_type"),
        (b"x" * (64 * 1024 + 1), {}, SECRET, 413, "body_too_large"),
    ],
    ids=["forged", "unsigned", "malformed", "invalid", "out-of-range", "content-type", "too-big"],
)
async def test_a_bad_webhook_is_refused_alone_and_stores_nothing(
    served: Served,
    portal: PortalStandIn,
    body: object,
    headers: dict[str, str],
    secret: str | None,
    status: int,
    reason: str | None,
) -> None:
    good = [post_update(served, update(10 + i, 7, f"good {i}")) for i in range(5)]
    bad = post_update(served, body, secret, **headers)

    *goods, refused = await asyncio.gather(*good, bad)

    assert [answer[0] for answer in goods] == [200] * 5
    assert refused[0] == status, refused
    if reason is not None:
        assert refused[1]["error"] == reason and refused[1]["message"]
    events = await portal.wait_for_events(5, "message.")
    assert sorted(e["data"]["content"]["text"] for e in events) == [f"good {i}" for i in range(5)]
    assert (
        served.engine.counters.snapshot()[("openlines_received_total", (("channel", "telegram"),))]
        == 5
    )


async def test_unknown_channel_and_connector_are_404(served: Served) -> None:
    status, body = await served.request("POST", "/hooks/fax/tg", b"{}")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await served.request("POST", "/hooks/telegram/nope", b"{}")
    assert (status, body["error"]) == (404, "not_found") and "nope" in body["message"]


async def test_a_duplicate_update_is_acknowledged_and_delivered_once(
    served: Served, portal: PortalStandIn
) -> None:
    assert (await post_update(served, update(5, 9, "once")))[0] == 200
    assert (await post_update(served, update(5, 9, "once")))[0] == 200
    assert (await post_update(served, update(6, 9, "then")))[0] == 200

    events = await portal.wait_for_events(2, "message.")
    assert [e["data"]["content"]["text"] for e in events] == ["once", "then"]
    assert (
        served.engine.counters.snapshot()[
            ("openlines_duplicates_total", (("channel", "telegram"),))
        ]
        == 1
    )


# -- the portal API ------------------------------------------------------------------------


async def test_portal_api_refusals(served: Served, portal: PortalStandIn) -> None:
    path = "/api/v1/dialogs/dlg_unknown/messages"
    status, body = await portal_call(
        served, portal, "POST", path, {"content": {"kind": "text", "text": "hi"}}
    )
    assert (status, body["error"]) == (404, "not_found")

    status, body = await served.request("POST", path, b"{}", {"Content-Type": "application/json"})
    assert (status, body["error"]) == (401, "bad_signature")

    payload = b'{"content": {"kind": "text", "text": "hi"}}'
    headers = {**portal.side.sign_request("POST", path, payload), "Content-Type": "text/plain"}
    status, body = await served.request("POST", path, payload, headers)
    assert (status, body["error"]) == (415, "unsupported_media_type")

    headers = {**portal.side.sign_request("POST", path, b"{"), "Content-Type": "application/json"}
    assert (await served.request("POST", path, b"{", headers))[0] == 400

    status, body = await portal_call(served, portal, "GET", "/api/v1/dead-letters?limit=0")
    assert (status, body["error"]) == (400, "bad_request") and "limit" in body["message"]

    status, body = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/status", {"status": "dancing"}
    )
    assert (status, body["error"]) == (422, "invalid_payload")

    status, body = await portal_call(served, portal, "GET", "/api/v1/lines/sales/operators")
    assert (status, body["error"]) == (404, "not_found")


async def test_a_replayed_api_call_is_refused(served: Served, portal: PortalStandIn) -> None:
    path = "/api/v1/operators/anna/status"
    body = b'{"status": "online"}'
    headers = {**portal.side.sign_request("PUT", path, body), "Content-Type": "application/json"}
    status, answer = await served.request("PUT", path, body, headers)
    assert status == 200 and answer["status"] == "online"

    status, answer = await served.request("PUT", path, body, headers)

    assert (status, answer["error"]) == (401, "bad_signature") and "replay" in answer["message"]


async def test_operator_flow_through_the_api(served: Served, portal: PortalStandIn) -> None:
    status, _ = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/status", {"status": "online"}
    )
    assert status == 200
    assert (await post_update(served, update(30, 11, "help")))[0] == 200
    [assigned] = await portal.wait_for_events(1, "dialog.assigned")
    dialog_id = assigned["dialog"]["id"]

    status, body = await portal_call(
        served, portal, "POST", f"/api/v1/dialogs/{dialog_id}/finish", {"operator_id": "anna"}
    )

    assert status == 200 and body["state"] == "closed"
    status, body = await portal_call(
        served, portal, "POST", f"/api/v1/dialogs/{dialog_id}/finish", {"operator_id": "anna"}
    )
    assert status in (404, 409) and body["message"]


# -- the admin API -------------------------------------------------------------------------


async def test_admin_api_needs_its_token(served: Served) -> None:
    status, body = await admin(served, "GET", "/admin/v1/registry", token=None)
    assert (status, body["error"]) == (401, "bad_signature")
    status, body = await admin(served, "GET", "/admin/v1/registry", token="guess")
    assert status == 401

    status, body = await admin(served, "GET", "/admin/v1/registry")

    assert status == 200 and body["portals"][0]["license_key"] == "***"
    assert body["connectors"][0]["credentials"] == "***"


async def test_admin_adds_a_portal_that_then_receives_deliveries(
    served: Served, telegram: TelegramApiStandIn
) -> None:
    second = PortalStandIn.create("beta")
    await second.start()
    try:
        second.engine_public_key_b64 = served.engine.engine_key["public_key"]
        status, body = await admin(
            served, "PUT", "/admin/v1/portals/beta", second.portal_config(linger_ms=0)
        )
        assert status == 200, body
        connector = {
            "id": "tg-beta",
            "channel": "telegram",
            "portal": "beta",
            "line": "support",
            "credentials": {
                "bot_token": telegram.token,
                "secret_token": "beta-secret",
                "api_base_url": telegram.base_url,
            },
        }
        status, body = await admin(served, "PUT", "/admin/v1/connectors/tg-beta", connector)
        assert status == 200, body

        payload = orjson.dumps(update(1, 5, "to beta"))
        headers = {"Content-Type": "application/json", SECRET_HEADER: "beta-secret"}
        assert (await served.request("POST", "/hooks/telegram/tg-beta", payload, headers))[0] == 200

        [event] = await second.wait_for_events(1, "message.")
        assert event["data"]["content"]["text"] == "to beta"
    finally:
        await second.stop()


async def test_admin_refusals(served: Served, portal: PortalStandIn) -> None:
    status, body = await admin(served, "PUT", "/admin/v1/portals/other", portal.portal_config())
    assert (status, body["error"]) == (422, "invalid_payload") and "id" in body["message"]

    status, body = await admin(
        served, "PUT", "/admin/v1/portals/p1", portal.portal_config(public_key="not-a-key")
    )
    assert status == 422 and body["message"]

    connector = {
        "id": "orphan",
        "channel": "telegram",
        "portal": "nobody",
        "line": "support",
        "credentials": {"bot_token": "1:x", "secret_token": "s"},
    }
    status, body = await admin(served, "PUT", "/admin/v1/connectors/orphan", connector)
    assert status == 422 and "nobody" in body["message"]

    status, body = await admin(served, "DELETE", "/admin/v1/connectors/nope")
    assert (status, body["error"]) == (404, "not_found")

    status, body = await admin(served, "POST", "/admin/v1/clock/advance?seconds=soon")
    assert (status, body["error"]) == (400, "bad_request")


async def test_a_bad_rules_edit_keeps_the_rules_in_force(served: Served, tmp_path: Path) -> None:
    before = served.engine.service.rules.version
    (tmp_path / "rules" / "p1-support.yaml").write_text(
        "portal: p1\nline: support\nqueue:\n  distribution: sideways\n", encoding="utf-8"
    )

    status, body = await admin(served, "POST", "/admin/v1/rules/reload")

    assert (status, body["error"]) == (422, "invalid_config")
    assert "p1-support.yaml" in body["message"] and "distribution" in body["message"]
    status, body = await admin(served, "GET", "/admin/v1/rules/status")
    assert status == 200 and body["rules_version"] == before and body["rules_error"]

    write_rules(tmp_path / "rules", RULES | {"p1-support.yaml": RULES["p1-support.yaml"]})
    status, body = await admin(served, "POST", "/admin/v1/rules/reload")
    assert status == 200 and body["rules_version"] > before


async def test_the_manual_clock_moves_through_the_admin_api(
    served: Served, clock: ManualClock
) -> None:
    before = clock.now()

    status, body = await admin(served, "POST", "/admin/v1/clock/advance?seconds=3600")

    assert status == 200 and body == {"advanced_s": 3600.0}
    assert clock.now() == before + 3600


# -- health and metrics --------------------------------------------------------------------


async def test_health_names_a_part_that_is_down_and_metrics_keep_answering(
    served: Served, portal: PortalStandIn
) -> None:
    status, body = await served.request("GET", "/healthz")
    assert status == 200 and body["status"] == "ok" and body["down"] == []

    served.server.open = False
    try:
        status, body = await served.request("GET", "/healthz")
        assert status == 503 and body["down"] == [HOST] and HOST in body["reasons"]
        async with served.session.get(served.url + "/healthz") as response:
            assert response.headers["Retry-After"] == str(RETRY_AFTER_S)

        status, text = await served.request("GET", "/metrics")
        assert status == 200
        assert f'openlines_actor_up{{actor="{HOST}"}} 0' in text
        assert 'openlines_actor_up{actor="registry"} 1' in text

        status, body = await portal_call(
            served, portal, "PUT", "/api/v1/operators/anna/status", {"status": "online"}
        )
        assert (status, body["error"]) == (503, "unavailable")
        # The webhook path does not need the portal server: acknowledged, handed off later.
        assert (await post_update(served, update(40, 3, "while down")))[0] == 200
    finally:
        served.server.open = True
    [event] = await portal.wait_for_events(1, "message.")
    assert event["data"]["content"]["text"] == "while down"


async def test_a_contacts_history_crosses_to_the_caller_whole(
    served: Served, portal: PortalStandIn
) -> None:
    """Answers cross from the portal's server as an actor call's do (pickled): a history
    of stored events arrives as the JSON the portal reads."""
    assert (await post_update(served, update(50, 8, "история")))[0] == 200
    [event] = await portal.wait_for_events(1, "message.")
    contact_id = event["dialog"]["contact_id"]

    status, body = await portal_call(
        served, portal, "GET", f"/api/v1/contacts/{contact_id}/history?limit=10"
    )

    assert status == 200, body
    assert body["contact_id"] == contact_id
    texts = [
        e["data"]["content"]["text"] for e in body["events"] if e["type"] == "message.received"
    ]
    assert texts == ["история"]
