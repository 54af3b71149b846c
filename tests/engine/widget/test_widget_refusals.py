"""Every bad request to the widget's API gets a clear refusal that stores nothing and fails
no other visitor's request: origins, tokens, rate limits, bodies, uploads."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from channels.registry import build_channel
from channels.widget.channel import WidgetChannel
from channels.widget.config import WidgetCredentials
from channels.widget.log import WidgetLog, log_path
from engine.cli import check_connectors
from engine.clock import ManualClock
from engine.config import load_engine_config
from engine.errors import ConfigError
from engine.models import Route
from engine.security.keys import generate_portal_keypair
from tests.engine.one_process import Served
from tests.engine.widget.widget_kit import ORIGIN, WIDGET_ID, VisitorClient
from tests.standins.portal import PortalStandIn

PUBLIC_KEY = generate_portal_keypair()[1]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def stored_messages(served: Served) -> int:
    reader = WidgetLog(log_path(served.engine.config.data_dir))
    try:
        return len(reader.since(0, 10_000))
    finally:
        reader.close()


async def test_a_page_of_another_origin_is_refused_and_an_allowed_one_may_read_answers(
    widget_served: Served,
) -> None:
    status, body = await VisitorClient(widget_served, origin="http://evil.test").call(
        "/session", {}
    )
    assert (status, body["error"]) == (403, "forbidden")
    async with widget_served.session.options(
        f"{widget_served.url}/widget/{WIDGET_ID}/messages",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    ) as answer:
        assert answer.status == 204
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
    # A refusal is readable by the allowed page too: it says why.
    async with widget_served.session.post(
        f"{widget_served.url}/widget/{WIDGET_ID}/messages",
        data=b"{}",
        headers={"Origin": ORIGIN, "Content-Type": "application/json"},
    ) as answer:
        assert answer.status == 401
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await widget_served.session.ws_connect(
            f"{widget_served.url}/widget/{WIDGET_ID}/live", headers={"Origin": "http://evil.test"}
        )
    assert refused.value.status == 403


async def test_an_unknown_widget_is_404_and_the_webhook_path_refuses_the_widget(
    widget_served: Served,
) -> None:
    status, body = await VisitorClient(widget_served, "no-such-widget").call("/session", {})
    assert (status, body["error"]) == (404, "not_found")
    status, body = await widget_served.request(
        "POST", "/hooks/widget/site", b"{}", {"Content-Type": "application/json"}
    )
    assert status == 401 and "/widget/" in body["message"]


async def test_a_visitor_over_their_limit_waits_and_others_are_not_held_up(
    widget_served: Served, clock: ManualClock, portal: PortalStandIn
) -> None:
    eager = await VisitorClient(widget_served).start()
    calm = await VisitorClient(widget_served).start()
    for n in range(5):  # visitor_messages_per_minute: 5 in the kit
        assert (await eager.send(f"m{n}", f"c-{n}"))[0] == 200
    status, body = await eager.send("too many", "c-5")
    assert (status, body["error"], body["retry_after_s"]) == (429, "rate_limited", 12)
    assert (await calm.send("hello", "c-1"))[0] == 200
    await clock.advance(12)
    assert (await eager.send("after the wait", "c-5"))[0] == 200
    await portal.wait_for_events(7, "message.")


async def test_an_address_over_its_limit_is_refused_with_retry_after(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    from tests.engine.widget.widget_kit import serve_widget, widget_connector

    connectors = [widget_connector(address_requests_per_minute=3)]
    async with await serve_widget(tmp_path, clock, session, portal, connectors) as served:
        for _ in range(3):
            await VisitorClient(served).start()
        status, body = await VisitorClient(served).call("/session", {})
        assert (status, body["error"]) == (429, "rate_limited")


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"{not json", {}, 400, "bad_request"),
        ({"client_id": "has space", "text": "x"}, {}, 422, "invalid_payload"),
        ({"client_id": "c-1"}, {}, 400, "bad_request"),
        ({"client_id": "c-1", "text": "x", "file_id": "file_" + "0" * 32}, {}, 400, "bad_request"),
        ({"client_id": "c-1", "text": "x" * 4001}, {}, 400, "bad_request"),
        ({"client_id": "c-1", "file_id": "file_" + "0" * 32}, {}, 404, "not_found"),
        (
            {"client_id": "c-1", "text": "x"},
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ({"client_id": "c-1", "text": "x"}, {"Authorization": "Bearer forged"}, 401, "bad_token"),
    ],
    ids=[
        "malformed",
        "bad-client-id",
        "empty",
        "text-and-file",
        "too-long",
        "foreign-file",
        "content-type",
        "forged-token",
    ],
)
async def test_a_bad_message_is_refused_alone_and_stores_nothing(
    widget_served: Served,
    portal: PortalStandIn,
    body: object,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    visitor = await VisitorClient(widget_served).start()
    answer = await visitor.call("/messages", body, **headers)
    assert (answer[0], answer[1]["error"]) == (status, reason), answer
    assert stored_messages(widget_served) == 0
    assert (await visitor.send("still fine", "c-2"))[0] == 200
    [event] = await portal.wait_for_events(1, "message.")
    assert event["data"]["content"]["text"] == "still fine"


async def test_an_upload_is_checked_and_served_so_no_browser_runs_it(
    widget_served: Served, portal: PortalStandIn, clock: ManualClock
) -> None:
    visitor = await VisitorClient(widget_served).start()
    name = "<img src=x onerror=alert(1)>\r\nX-Evil: 1.png"
    status, uploaded = await visitor.call(
        "/files", PNG, **{"Content-Type": "image/png", "X-File-Name": quote(name, safe="")}
    )
    assert status == 201, uploaded
    assert "\r" not in uploaded["name"] and "\n" not in uploaded["name"]
    status, body = await visitor.call(
        "/messages", {"client_id": "c-1", "file_id": uploaded["file_id"]}
    )
    assert status == 200, body
    [event] = await portal.wait_for_events(1, "message.")
    content = event["data"]["content"]
    assert content["kind"] == "image" and content["file"]["mime_type"] == "image/png"
    async with widget_served.session.get(content["file"]["url"]) as served_file:
        assert served_file.status == 200 and await served_file.read() == PNG
        assert served_file.headers["Content-Type"] == "image/png"
        assert served_file.headers["X-Content-Type-Options"] == "nosniff"
        disposition = served_file.headers["Content-Disposition"]
        assert disposition.startswith("inline;") and "<" not in disposition
        assert "X-Evil" not in served_file.headers
        assert "sandbox" in served_file.headers["Content-Security-Policy"]
    for data, kind, status, reason in (
        (b"<html><script>alert(1)</script>", "text/html", 415, "unsupported_media_type"),
        (b"<svg onload=alert(1)>", "image/svg+xml", 415, "unsupported_media_type"),
        (b"<html>not a png", "image/png", 400, "bad_request"),
        (b"\xff\xfe bad utf-8 \xff", "text/plain", 400, "bad_request"),
        (b"", "image/png", 400, "bad_request"),
        (PNG + b"\x00" * (64 * 1024), "image/png", 400, "bad_request"),
    ):
        await clock.advance(60)  # past the visitor's rate limit (5 a minute in the kit)
        answer = await visitor.call("/files", data, **{"Content-Type": kind})
        assert (answer[0], answer[1]["error"]) == (status, reason), (kind, answer)
    pdf = await visitor.call("/files", b"%PDF-1.7 ...", **{"Content-Type": "application/pdf"})
    async with widget_served.session.get(
        f"{widget_served.url}/widget/{WIDGET_ID}/files/{pdf[1]['file_id']}"
    ) as served_file:
        assert served_file.headers["Content-Disposition"].startswith("attachment;")
    # Another visitor cannot post someone else's upload as theirs.
    other = await VisitorClient(widget_served).start()
    status, body = await other.call(
        "/messages", {"client_id": "c-1", "file_id": uploaded["file_id"]}
    )
    assert status == 404


async def test_the_form_goes_to_the_crm_contact_and_a_required_form_comes_first(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    from tests.engine.widget.widget_kit import serve_widget, widget_connector

    connectors = [widget_connector(form={"fields": ["name", "phone", "email"], "required": True})]
    async with await serve_widget(tmp_path, clock, session, portal, connectors) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        visitor = await VisitorClient(served).start()
        assert visitor.session_json["settings"]["form"]["fields"] == ["name", "phone", "email"]
        status, body = await visitor.send("hi", "c-1")
        assert (status, body["error"]) == (409, "form_required")
        status, body = await visitor.call("/details", {"client_id": "f-1", "email": "not-mail"})
        assert status == 422
        status, body = await visitor.call(
            "/details",
            {
                "client_id": "f-1",
                "name": "Ana",
                "phone": "+351 912 345 678",
                "email": "ana@shop.pt",
            },
        )
        assert status == 200, body
        assert (await visitor.send("hi", "c-1"))[0] == 200
        events = await portal.wait_for_events(2, "message.")
        customer = events[1]["data"]["customer"]
        assert (customer["name"], customer["email"]) == ("Ana", "ana@shop.pt")
        # A returning visitor's page keeps the token: the same visitor, their details known.
        again = await VisitorClient(served).start(token=visitor.token)
        assert again.session_json["details"]["name"] == "Ana"


def test_widget_settings_refuse_unknown_fields_and_unsafe_types(tmp_path: Path) -> None:
    route = Route(portal_id="p1", line_id="support", connector_id="site", channel="widget")
    good = {"widget_id": WIDGET_ID, "allowed_origins": [ORIGIN]}
    assert isinstance(build_channel(route, good, tmp_path), WidgetChannel)
    for bad, field in (
        ({**good, "colour": "red"}, "colour"),
        ({**good, "allowed_origins": ["shop.test/path"]}, "allowed_origins"),
        ({**good, "file_types": ["text/html"]}, "file_types"),
        ({**good, "look": {"accent_colour": "blue"}}, "look.accent_colour"),
        ({**good, "form": {"fields": ["name", "name"]}}, "form.fields"),
    ):
        with pytest.raises(ConfigError) as refused:
            build_channel(route, bad, tmp_path)
        assert field in str(refused.value) and "site" in str(refused.value)
    assert WidgetCredentials.model_validate(good).look.position == "bottom-right"


def test_a_bad_widget_setting_in_the_config_file_names_its_file_line_and_field(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "engine.yaml"
    config_file.write_text(
        "connectors:\n"
        "  - id: site\n"
        "    channel: widget\n"
        "    portal: p1\n"
        "    line: support\n"
        "    credentials:\n"
        "      widget_id: shop-widget-0001\n"
        "      allowed_origins: [http://shop.test]\n"
        "      look:\n"
        "        accent_colour: green\n"
        "portals:\n"
        "  - {id: p1, endpoint: 'http://127.0.0.1:9/x', lines: [{id: support}],\n"
        f"     public_key: {PUBLIC_KEY}, license_key: license-p1-0123456789}}\n",
        encoding="utf-8",
    )
    config = load_engine_config(config_file)
    with pytest.raises(ConfigError) as refused:
        check_connectors(config, config_file)
    assert f"{config_file}:10: connectors.0.credentials.look.accent_colour:" in str(refused.value)
