"""Bad input gets a clear 4xx with a reason, is counted, and loses nothing already stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.custom_client import (
    custom_connector,
    custom_message,
    signed_headers,
)
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.usefixtures("ray_session")

MAX_BODY = 64 * 1024


@pytest.fixture
async def engine(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[RunningEngine]:
    config = engine_config(
        tmp_path, [portal.portal_config()], [custom_connector()], max_body_bytes=MAX_BODY
    )
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def test_every_bad_request_is_refused_with_its_reason_and_nothing_is_lost(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    assert (await engine.push_custom([custom_message("c", 1, "before")]))[0] == 200

    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("/hooks/custom/shop", b"{not json", signed_headers(b"{not json"), 400, "bad_request"),
        (
            "/hooks/custom/shop",
            b"{}",
            signed_headers(b"{}", content_type="text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "/hooks/custom/shop",
            b"x" * (MAX_BODY + 1),
            signed_headers(b"x" * (MAX_BODY + 1)),
            413,
            "body_too_large",
        ),
        (
            "/hooks/custom/shop",
            b'{"messages": []}',
            {"Content-Type": "application/json"},
            401,
            "bad_signature",
        ),
        (
            "/hooks/custom/shop",
            b'{"messages": [{"chat_id": "c"}]}',
            signed_headers(b'{"messages": [{"chat_id": "c"}]}'),
            422,
            "invalid_payload",
        ),
        ("/hooks/nosuch/shop", b"{}", signed_headers(b"{}"), 404, "not_found"),
        ("/hooks/custom/nosuch", b"{}", signed_headers(b"{}"), 404, "not_found"),
        ("/hooks/telegram/shop", b"{}", signed_headers(b"{}"), 404, "not_found"),
        ("/api/v1/dead-letters", b"", {"openlines-portal-id": "nosuch"}, 401, "bad_signature"),
        ("/nowhere", b"", {}, 404, "not_found"),
    ]
    for path, raw, request_headers, status, reason in cases:
        method = "GET" if path.startswith("/api") or path == "/nowhere" else "POST"
        got_status, got_body = await engine.request(method, path, raw, request_headers)
        assert (got_status, got_body["error"]) == (status, reason), (path, got_body)
        assert got_body["message"], path

    assert (await engine.push_custom([custom_message("c", 2, "after")]))[0] == 200
    events = await portal.wait_for_events(2, "message.")
    assert [e["data"]["content"]["text"] for e in events] == ["before", "after"]
    assert [e["type"] for e in portal.events] == ["dialog.queued"] + ["message.received"] * 2
    assert [e["seq"] for e in portal.events] == [1, 2, 3]

    metrics = await engine.metrics()
    for reason in (
        "bad_request",
        "unsupported_media_type",
        "body_too_large",
        "bad_signature",
        "invalid_payload",
        "not_found",
    ):
        assert metrics[f'openlines_rejected_total{{reason="{reason}"}}'] >= 1, reason


async def test_schema_errors_name_the_field(engine: RunningEngine) -> None:
    payload = orjson.dumps({"messages": [{**custom_message("c", 1, "x"), "sequence": "first"}]})
    status, body = await engine.request(
        "POST", "/hooks/custom/shop", payload, signed_headers(payload)
    )
    assert status == 422
    assert "messages.0.sequence" in body["message"]


async def test_numbers_the_store_cannot_keep_fail_alone_beside_valid_traffic(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    """A sequence over 2**63 used to fail a whole group commit (503 for every webhook in
    it); now it is refused at the edge and the webhooks around it are stored."""

    async def push(chat: str, sequence: int) -> int:
        status, _ = await engine.push_custom([custom_message(chat, sequence, f"{chat}/{sequence}")])
        return status

    valid = [push(f"chat-{n}", 1) for n in range(20)]
    huge = [push(f"big-{n}", 2**63 + n) for n in range(5)]
    statuses = await asyncio.gather(*valid, *huge)

    assert statuses == [200] * 20 + [422] * 5
    events = await portal.wait_for_events(20, "message.")
    assert sorted(e["data"]["content"]["text"] for e in events) == sorted(
        f"chat-{n}/1" for n in range(20)
    )
    metrics = await engine.metrics()
    assert metrics['openlines_rejected_total{reason="invalid_payload"}'] == 5


async def test_a_client_that_leaves_mid_body_is_no_internal_error(engine: RunningEngine) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", engine.actors.port)
    writer.write(
        b"POST /hooks/custom/shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"messages": ['
    )
    await writer.drain()
    writer.close()

    metrics = await engine.metric_reaches(
        'openlines_rejected_total{reason="client_disconnected"}', 1
    )
    assert metrics.get('openlines_rejected_total{reason="internal_error"}', 0) == 0
