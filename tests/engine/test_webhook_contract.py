"""The engine's side of the grown-up channel contract, in one process without Ray: the GET
handshake, one app-level webhook for many connectors, refusals logged and counted with their
channel and connector, and channel events that reach the portal without opening a dialog."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.clock import ManualClock
from tests.engine.app_channel import registered, signature
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, post_update, serving, update
from tests.standins.key_server import KeyServerStandIn
from tests.standins.portal import PortalStandIn

APP_SECRET = "app-secret"
OTHER_SECRET = "another-apps-secret"


def apphook(connector_id: str, account_id: str, secret: str = APP_SECRET) -> dict[str, Any]:
    return connector(
        connector_id,
        "apphook",
        app_secret=secret,
        verify_token=f"verify-{connector_id}",
        account_id=account_id,
    )


@pytest.fixture
async def keys() -> AsyncIterator[KeyServerStandIn]:
    async with KeyServerStandIn() as server:
        yield server


@pytest.fixture
async def app_served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    keys: KeyServerStandIn,
) -> AsyncIterator[Served]:
    connectors = [
        apphook("a1", "111"),
        apphook("a2", "222"),
        apphook("a3", "333", OTHER_SECRET),
        connector("k1", "keyhook", keys_url=keys.url),
    ]
    with registered():
        async with serving(tmp_path, clock, session, portal, connectors) as running:
            yield running


def message(mid: str, sender: str, text: str, time_ms: int = 1_700_000_000_000) -> dict[str, Any]:
    return {"mid": mid, "from": sender, "text": text, "time": time_ms}


def receipt(mid: str, sender: str, status: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "mid": mid,
        "from": sender,
        "status": status,
        "time": 1_700_000_001_000,
        "reason": reason,
    }


async def post_app(
    served: Served, entries: list[dict[str, Any]], secret: str = APP_SECRET, tamper: bool = False
) -> tuple[int, Any]:
    body = orjson.dumps({"object": "app", "entry": entries})
    sent = body.replace(b"hello", b"HELLO") if tamper else body
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(secret, body)}
    return await served.request("POST", "/hooks/apphook", sent, headers)


def refused(served: Served, channel: str, connector: str, reason: str) -> float:
    labels = (("channel", channel), ("connector", connector), ("reason", reason))
    return served.engine.counters.snapshot().get(("openlines_webhook_refused_total", labels), 0)


def ignored(served: Served, channel: str, reason: str) -> float:
    labels = (("channel", channel), ("reason", reason))
    return served.engine.counters.snapshot().get(("openlines_ignored_total", labels), 0)


# -- one webhook for many connectors ------------------------------------------------------


async def test_batched_entries_reach_each_connectors_dialogs_and_unknown_ids_are_counted(
    app_served: Served, portal: PortalStandIn
) -> None:
    entries = [
        {"id": "111", "messages": [message("m1", "u1", "hello from Мария 👋")]},
        {"id": "222", "messages": [message("m2", "u2", "hello two")]},
        {"id": "999", "messages": [message("m3", "u3", "nobody's")]},
        {"id": "111", "messages": [message("m4", "u1", "hello again", 1_700_000_000_500)]},
    ]

    status, body = await post_app(app_served, entries)

    assert (status, body) == (200, "EVENT_RECEIVED")
    events = await portal.wait_for_events(3, "message.")
    by_text = {e["data"]["content"]["text"]: e["dialog"]["connector_id"] for e in events}
    assert by_text == {"hello from Мария 👋": "a1", "hello two": "a2", "hello again": "a1"}
    assert ignored(app_served, "apphook", "unknown_connector") == 1


async def test_a_body_of_only_unknown_ids_is_refused_logged_and_counted(
    app_served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "engine.web.webhooks"):
        status, body = await post_app(app_served, [{"id": "999", "messages": []}])

    assert (status, body["error"]) == (404, "not_found") and "999" in body["message"]
    assert refused(app_served, "apphook", "unknown", "not_found") == 1
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "channel=apphook" in line and "reason=not_found" in line


async def test_a_tampered_app_body_is_refused_and_nothing_is_stored(
    app_served: Served, portal: PortalStandIn
) -> None:
    entries = [{"id": "111", "messages": [message("m1", "u1", "hello")]}]
    status, body = await post_app(app_served, entries, tamper=True)
    assert (status, body["error"]) == (401, "bad_signature")
    status, _ = await post_app(app_served, entries, secret="forged")
    assert status == 401
    assert refused(app_served, "apphook", "unknown", "bad_signature") == 2
    assert ("openlines_received_total", (("channel", "apphook"),)) not in (
        app_served.engine.counters.snapshot()
    )


async def test_entries_of_two_apps_need_both_secrets(app_served: Served) -> None:
    """a1 and a3 belong to different apps: the body signed by one app proves nothing of the
    other's entries, so the whole request is refused and nothing of it is stored."""
    entries = [
        {"id": "111", "messages": [message("m1", "u1", "hello")]},
        {"id": "333", "messages": [message("m2", "u3", "hello")]},
    ]
    status, body = await post_app(app_served, entries)
    assert (status, body["error"]) == (401, "bad_signature")


async def test_an_app_body_that_is_not_json_is_a_400(app_served: Served) -> None:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"}
    status, body = await app_served.request("POST", "/hooks/apphook", b"{nope", headers)
    assert (status, body["error"]) == (400, "bad_request")


async def test_a_channel_without_an_app_webhook_has_no_app_route(served: Served) -> None:
    status, body = await served.request("POST", "/hooks/telegram", b"{}")
    assert (status, body["error"]) == (404, "not_found")


# -- handshakes on GET ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/hooks/apphook", "/hooks/apphook/a2"])
async def test_the_handshake_answers_the_challenge_for_a_known_verify_token(
    app_served: Served, path: str
) -> None:
    query = "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-a2"
    assert await app_served.request("GET", path + query) == (200, "1158201444")


async def test_a_handshake_with_a_wrong_token_is_refused(app_served: Served) -> None:
    query = "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess"
    status, body = await app_served.request("GET", "/hooks/apphook" + query)
    assert (status, body["error"]) == (403, "forbidden")
    status, body = await app_served.request("GET", "/hooks/apphook/a1" + query)
    assert (status, body["error"]) == (403, "forbidden")
    status, body = await app_served.request("GET", "/hooks/apphook/a1?hub.mode=unsubscribe")
    assert (status, body["error"]) == (400, "bad_request")
    assert refused(app_served, "apphook", "a1", "forbidden") == 1


async def test_a_channel_without_a_handshake_answers_get_with_405(served: Served) -> None:
    status, body = await served.request("GET", "/hooks/telegram/tg")
    assert (status, body["error"]) == (405, "method_not_allowed")


# -- refusals leave a trace -----------------------------------------------------------------


async def test_every_refused_webhook_is_logged_once_and_counted_with_its_labels(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "engine.web.webhooks"):
        assert (await post_update(served, update(1, 42, "x"), "wrong"))[0] == 401
        assert (await post_update(served, update(2, 42, "x"), "wrong"))[0] == 401
        assert (await post_update(served, b"{not json"))[0] == 400
        assert (await served.request("POST", "/hooks/telegram/nope", b"{}"))[0] == 404

    assert refused(served, "telegram", "tg", "bad_signature") == 2
    assert refused(served, "telegram", "tg", "bad_request") == 1
    assert refused(served, "telegram", "unknown", "not_found") == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook")]
    assert len(lines) == 4
    assert "channel=telegram connector=tg reason=bad_signature" in lines[0]
    assert "connector=nope reason=not_found" in lines[3]


# -- events that are not messages -----------------------------------------------------------


async def test_a_receipt_joins_its_dialog_and_one_without_a_dialog_opens_none(
    app_served: Served, portal: PortalStandIn
) -> None:
    await post_app(app_served, [{"id": "111", "messages": [message("m1", "u1", "hello")]}])
    [first] = await portal.wait_for_events(1, "message.")

    receipts = [receipt("out-1", "u1", "failed", "blocked by the user"), receipt("o", "u9", "read")]
    status, _ = await post_app(app_served, [{"id": "111", "receipts": receipts}])
    assert status == 200
    status, _ = await post_app(app_served, [{"id": "111", "receipts": receipts}])  # a retry

    [failed] = await portal.wait_for_events(1, "channel.")
    assert failed["dialog"]["id"] == first["dialog"]["id"]
    data = failed["data"]
    assert (data["kind"], data["channel_message_ids"], data["reason"]) == (
        "failed",
        ["out-1"],
        "blocked by the user",
    )
    # A later message of the same dialog arrives after both receipts were routed.
    await post_app(app_served, [{"id": "111", "messages": [message("m5", "u1", "hello", 2)]}])
    await portal.wait_for_events(2, "message.")
    counters = app_served.server.host.counters.snapshot()
    assert counters[("openlines_dialogs_opened_total", (("portal", "p1"),))] == 1
    duplicates = app_served.engine.counters.snapshot()
    assert duplicates[("openlines_duplicates_total", (("channel", "apphook"),))] == 2
    assert [e["type"] for e in portal.of_types("channel.")] == ["channel.event"]


# -- asynchronous verification ---------------------------------------------------------------


async def post_keyed(served: Served, key_id: str, key: str, text: str) -> tuple[int, Any]:
    body = orjson.dumps(
        {"object": "app", "entry": [{"id": "-", "messages": [message(text, "u7", text)]}]}
    )
    digest = signature(key, body).removeprefix("sha256=")
    headers = {"Content-Type": "application/json", "X-Key-Id": key_id, "X-Signature": digest}
    return await served.request("POST", "/hooks/keyhook/k1", body, headers)


async def test_a_channel_verifying_with_fetched_keys_is_awaited_and_caches_them(
    app_served: Served, portal: PortalStandIn, keys: KeyServerStandIn, clock: ManualClock
) -> None:
    assert (await post_keyed(app_served, "k1", "secret-1", "one"))[0] == 200
    assert (await post_keyed(app_served, "k1", "secret-1", "two"))[0] == 200
    assert keys.fetches == 1
    status, body = await post_keyed(app_served, "k1", "forged", "three")
    assert (status, body["error"]) == (401, "bad_signature")
    keys.keys = {"k2": "secret-2"}  # rotated
    await clock.advance(300)
    assert (await post_keyed(app_served, "k2", "secret-2", "four"))[0] == 200
    events = await portal.wait_for_events(3, "message.")
    assert [e["data"]["content"]["text"] for e in events] == ["one", "two", "four"]
    assert refused(app_served, "keyhook", "k1", "bad_signature") == 1


async def test_keys_that_cannot_be_fetched_are_a_503_the_provider_retries(
    app_served: Served, keys: KeyServerStandIn
) -> None:
    keys.down = True
    status, body = await post_keyed(app_served, "k1", "secret-1", "one")
    assert (status, body["error"]) == (503, "unavailable") and "HTTP 503" in body["message"]
    keys.down = False
    assert (await post_keyed(app_served, "k1", "secret-1", "one"))[0] == 200
