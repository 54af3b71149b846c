"""Connecting a channel in one step through the admin API, in one process without Ray, against
loopback stand-ins of Telegram, VK and Viber: the provider's set-up calls, the connector
stored, a customer's message through the new webhook to the portal and the reply back, clear
refusals for a bad token or a missing right, and disconnecting undoing it all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.cli import main
from tests.engine.one_process import Served
from tests.engine.web_kit import ADMIN, admin, portal_call
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, recorded_update
from tests.standins.viber_api import ViberApiStandIn
from tests.standins.viber_api import recorded_event as viber_event
from tests.standins.vk_api import VkApiStandIn, post_event
from tests.standins.vk_api import recorded_event as vk_event


def connect_body(channel: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"channel": channel, "portal": "p1", "line": "support", "settings": settings}


async def connect(served: Served, connector_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await admin(served, "POST", f"/admin/v1/connectors/{connector_id}/connect", body)


async def reply_to_first_message(served: Served, portal: PortalStandIn, text: str) -> None:
    [message] = await portal.wait_for_events(1, "message.")
    path = f"/api/v1/dialogs/{message['dialog']['id']}/messages"
    content = {"content": {"kind": "text", "text": text}}
    assert (await portal_call(served, portal, "POST", path, content))[0] == 202
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent", sent


# -- Telegram -------------------------------------------------------------------------------


async def test_telegram_connects_with_a_generated_secret_and_carries_messages_both_ways(
    served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    settings = {"bot_token": telegram.token, "api_base_url": telegram.base_url}

    status, done = await connect(served, "tg-new", connect_body("telegram", settings))

    assert status == 200, done
    assert done["webhook_url"] == f"{served.url}/hooks/telegram/tg-new"
    [set_webhook] = telegram.calls_to("setWebhook")
    assert set_webhook.params["url"] == done["webhook_url"]
    secret = set_webhook.params["secret_token"]
    assert len(secret) >= 32 and secret.replace("-", "").replace("_", "").isalnum()
    assert "message_reaction" in set_webhook.params["allowed_updates"]
    stored = served.engine.registry.connectors["tg-new"]
    assert stored.credentials["secret_token"] == secret

    assert (await telegram.deliver(recorded_update("text"))).status == 200
    await reply_to_first_message(served, portal, "Здравствуйте 👋")
    assert telegram.calls_to("sendMessage")[-1].params["text"] == "Здравствуйте 👋"

    status, done = await admin(served, "POST", "/admin/v1/connectors/tg-new/disconnect")
    assert (status, done["unsubscribed"]) == (200, True)
    assert telegram.calls_to("deleteWebhook") and telegram.webhook == {}
    assert "tg-new" not in served.engine.registry.connectors


async def test_a_wrong_telegram_token_is_refused_clearly_and_nothing_is_stored(
    served: Served, telegram: TelegramApiStandIn
) -> None:
    settings = {"bot_token": "123:wrong", "api_base_url": telegram.base_url}
    status, body = await connect(served, "tg-bad", connect_body("telegram", settings))
    assert (status, body["error"]) == (422, "provider_refused")
    assert "telegram getMe: Unauthorized: the bot token is wrong" in body["message"]
    assert "123:wrong" not in body["message"]
    assert "tg-bad" not in served.engine.registry.connectors
    assert telegram.calls_to("setWebhook") == []


async def test_a_failed_set_webhook_removes_the_connector_again(
    served: Served, telegram: TelegramApiStandIn
) -> None:
    telegram.fail_next(
        400, "Bad Request: bad webhook: HTTPS url must be provided", method="setWebhook"
    )
    settings = {"bot_token": telegram.token, "api_base_url": telegram.base_url}
    status, body = await connect(served, "tg-http", connect_body("telegram", settings))
    assert (status, body["error"]) == (422, "provider_refused")
    assert "HTTPS url must be provided" in body["message"]
    assert "tg-http" not in served.engine.registry.connectors


@pytest.mark.parametrize(
    ("connector_id", "body", "status", "error", "words"),
    [
        ("tg", connect_body("telegram", {"bot_token": "x"}), 409, "conflict", "exists"),
        (
            "n1",
            {**connect_body("telegram", {"bot_token": "x"}), "portal": "p9"},
            404,
            "not_found",
            "p9",
        ),
        (
            "n2",
            {**connect_body("telegram", {"bot_token": "x"}), "line": "l9"},
            422,
            "invalid_config",
            "l9",
        ),
        ("n3", connect_body("custom", {}), 404, "not_found", "one step"),
        ("n4", connect_body("fax", {}), 404, "not_found", "fax"),
        ("n5", connect_body("telegram", {"token": "x"}), 422, "invalid_payload", "bot_token"),
    ],
    ids=["exists", "portal", "line", "custom", "unknown-channel", "bad-settings"],
)
async def test_connect_refusals_come_before_any_provider_call(
    served: Served,
    telegram: TelegramApiStandIn,
    connector_id: str,
    body: dict[str, Any],
    status: int,
    error: str,
    words: str,
) -> None:
    answered, refused = await connect(served, connector_id, body)
    assert (answered, refused["error"]) == (status, error), refused
    assert words in refused["message"]
    assert telegram.calls == []


async def test_connect_needs_the_admin_token(served: Served) -> None:
    path = "/admin/v1/connectors/x/connect"
    status, _ = await admin(served, "POST", path, connect_body("telegram", {}), token="wrong")
    assert status == 401


async def test_disconnecting_an_unknown_connector_is_404_and_force_removes_a_refusing_one(
    served: Served, telegram: TelegramApiStandIn
) -> None:
    status, body = await admin(served, "POST", "/admin/v1/connectors/nope/disconnect")
    assert (status, body["error"]) == (404, "not_found")
    telegram.fail_next(401, "Unauthorized", method="deleteWebhook")
    status, body = await admin(served, "POST", "/admin/v1/connectors/tg/disconnect")
    assert (status, body["error"]) == (422, "provider_refused")
    assert "tg" in served.engine.registry.connectors
    telegram.fail_next(401, "Unauthorized", method="deleteWebhook")
    path = "/admin/v1/connectors/tg/disconnect"
    status, body = await admin(served, "POST", path, {"force": True})
    assert (status, body["unsubscribed"]) == (200, False)
    assert "tg" not in served.engine.registry.connectors


# -- VK -------------------------------------------------------------------------------------


async def test_vk_registers_a_confirmed_callback_server_and_carries_messages_both_ways(
    served: Served, portal: PortalStandIn, vk_api: VkApiStandIn
) -> None:
    settings = {
        "access_token": vk_api.access_token,
        "group_id": vk_api.groups.group_id,
        "api_base_url": vk_api.base_url,
    }

    status, done = await connect(served, "vk-new", connect_body("vk", settings))

    assert status == 200, done
    [server] = vk_api.groups.servers.values()
    assert (server.url, server.status) == (done["webhook_url"], "ok")  # it answered the code
    assert server.settings["api_version"] == "5.199"
    assert server.settings["message_new"] == "1" and server.settings["message_read"] == "1"
    stored = served.engine.registry.connectors["vk-new"].credentials
    assert stored["secret"] == server.secret_key and stored["callback_server_id"] == server.id

    event = {**vk_event("text"), "secret": server.secret_key}
    answered = await post_event(served.session, server.url, event)
    assert (answered.status, answered.text) == (200, "ok")
    await reply_to_first_message(served, portal, "Ответ оператора")
    assert vk_api.delivered[-1].params["message"] == "Ответ оператора"

    status, _ = await admin(served, "POST", "/admin/v1/connectors/vk-new/disconnect")
    assert status == 200 and vk_api.groups.servers == {}


async def test_vk_refuses_a_token_without_the_manage_right_and_a_wrong_token(
    served: Served, vk_api: VkApiStandIn
) -> None:
    settings = {"access_token": vk_api.access_token, "group_id": vk_api.groups.group_id}
    settings["api_base_url"] = vk_api.base_url
    vk_api.groups.permissions = ["messages"]
    status, body = await connect(served, "vk-new", connect_body("vk", settings))
    assert (status, body["error"]) == (422, "provider_refused")
    assert "lacks the manage right" in body["message"]

    status, body = await connect(
        served, "vk-new", connect_body("vk", {**settings, "access_token": "wrong"})
    )
    assert (
        status == 422
        and "error 5" in body["message"]
        and "access token is wrong" in body["message"]
    )
    assert "vk-new" not in served.engine.registry.connectors


# -- Viber ----------------------------------------------------------------------------------


async def test_viber_sets_its_webhook_which_viber_checks_and_carries_messages_both_ways(
    served: Served, portal: PortalStandIn, viber_api: ViberApiStandIn
) -> None:
    settings = {"auth_token": viber_api.auth_token, "api_base_url": viber_api.base_url}

    status, done = await connect(served, "vb-new", connect_body("viber", settings))

    assert status == 200, done
    assert viber_api.webhook["url"] == done["webhook_url"]
    assert [check.status for check in viber_api.webhook_checks] == [200]  # Viber's own check
    assert "failed" in viber_api.webhook["event_types"]

    assert (await viber_api.deliver(viber_event("unicode"))).status == 200
    await reply_to_first_message(served, portal, "Ответ 📦")
    assert viber_api.calls[-1].body["text"] == "Ответ 📦"

    status, _ = await admin(served, "POST", "/admin/v1/connectors/vb-new/disconnect")
    assert status == 200 and viber_api.webhook == {}


async def test_a_wrong_viber_token_is_refused_clearly(
    served: Served, viber_api: ViberApiStandIn
) -> None:
    settings = {"auth_token": "wrong", "api_base_url": viber_api.base_url}
    status, body = await connect(served, "vb-new", connect_body("viber", settings))
    assert (status, body["error"]) == (422, "provider_refused")
    assert "invalidAuthToken: the auth token is wrong" in body["message"]


# -- the command line -----------------------------------------------------------------------


async def test_openlines_connect_and_disconnect_through_the_admin_api(
    served: Served, viber_api: ViberApiStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_options = ["--engine", served.url, "--admin-token", ADMIN]
    connect_argv = [
        "connect",
        "viber",
        "--id",
        "vb-cli",
        "--portal",
        "p1",
        "--line",
        "support",
        "--api-base-url",
        viber_api.base_url,
        *admin_options,
    ]

    wrong = await asyncio.to_thread(main, [*connect_argv, "--auth-token", "wrong"])
    code = await asyncio.to_thread(main, [*connect_argv, "--auth-token", viber_api.auth_token])
    gone = await asyncio.to_thread(main, ["disconnect", "vb-cli", *admin_options])
    again = await asyncio.to_thread(main, ["disconnect", "vb-cli", *admin_options])

    out, err = capsys.readouterr()
    assert wrong == 1 and "422" in err and "the auth token is wrong" in err
    assert code == 0, err
    assert f"the provider posts to {served.url}/hooks/viber/vb-cli" in out
    assert gone == 0 and "disconnected connector vb-cli" in out
    assert again == 1 and "404" in err
    assert viber_api.webhook == {}
