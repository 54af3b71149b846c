"""Customers' media through signed, expiring links (docs/channels/media.md), in one process
against the Bot API stand-in's ``getFile`` and file downloads: the portal asks for a link,
anyone holding it gets the file streamed through (the bot token never shown), within the
size limit and with a type that cannot run as a page; forged, altered, expired links and
files the provider lost are refused with their reasons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.clock import ManualClock
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, portal_call, serving
from tests.standins.meta_api import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
)
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # 2 KiB that start like a JPEG
MAX_BYTES = 4096


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraphStandIn]:
    async with MetaGraphStandIn() as api:
        yield api


@pytest.fixture
async def media_served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    telegram: TelegramApiStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    whatsapp = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": WA_TOKEN,
        "graph_api_url": graph.graph_api_url,
    }
    connectors = [
        connector("wa", "whatsapp", **whatsapp),
        connector(
            "tg",
            "telegram",
            bot_token=telegram.token,
            secret_token="s",
            api_base_url=telegram.base_url,
        ),
        connector(
            "vk",
            "vk",
            access_token="vk1.a.token",
            secret="vk-secret",
            confirmation_code="c0nf1rm",
            group_id=193668024,
        ),
    ]
    async with serving(
        tmp_path, clock, session, portal, connectors, media_max_bytes=MAX_BYTES
    ) as running:
        yield running


async def link_to(
    served: Served, portal: PortalStandIn, file_id: str, connector_id: str = "tg"
) -> tuple[int, Any]:
    body = {"connector_id": connector_id, "file_id": file_id}
    return await portal_call(served, portal, "POST", "/api/v1/media-links", body)


async def fetch(served: Served, url: str) -> tuple[int, dict[str, str], bytes]:
    async with served.session.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def test_a_link_serves_the_customers_photo_streamed_from_telegram(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    telegram.add_file("AgACAgIAAxkBAAIBZ", PHOTO, "photos/file_7.jpg", "image/jpeg")
    status, answer = await link_to(media_served, portal, "AgACAgIAAxkBAAIBZ")
    assert status == 200, answer
    assert answer["expires_at"] == round(clock.now() + 3600)
    assert answer["url"].startswith(f"{media_served.url}/media/")
    assert telegram.token not in answer["url"] and "AgACAgIAAxkBAAIBZ" not in answer["url"]
    assert telegram.calls_to("getFile") == []  # nothing is fetched before the link is used

    status, headers, body = await fetch(media_served, answer["url"])
    assert (status, body) == (200, PHOTO)
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"] == 'inline; filename="file_7.jpg"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert headers["Cache-Control"] == "private, max-age=3600"
    assert [call.params["file_id"] for call in telegram.calls_to("getFile")] == [
        "AgACAgIAAxkBAAIBZ"
    ]
    assert telegram.downloads == ["photos/file_7.jpg"]


async def test_a_file_that_could_run_as_a_page_is_a_download(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    page = b"<html><script>alert(1)</script></html>"
    telegram.add_file("BQACAgIAAxkBAAIBa", page, "documents/file_3.html", "text/html")
    _, answer = await link_to(media_served, portal, "BQACAgIAAxkBAAIBa")
    status, headers, body = await fetch(media_served, answer["url"])
    assert (status, body) == (200, page)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="file_3.html"'


async def test_an_expired_link_is_gone(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, clock: ManualClock
) -> None:
    telegram.add_file("AgAD1", PHOTO, "photos/a.jpg", "image/jpeg")
    _, answer = await link_to(media_served, portal, "AgAD1")
    await clock.advance(3599)
    assert (await fetch(media_served, answer["url"]))[0] == 200
    await clock.advance(1)
    status, _, body = await fetch(media_served, answer["url"])
    assert status == 410 and b"link_expired" in body


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # the MAC
        lambda token: "e30" + token[token.index(".") :],  # another payload, the old MAC
        lambda token: "not-a-token",
        lambda token: token + ".x",
    ],
    ids=["mac", "payload", "garbage", "extra"],
)
async def test_a_forged_or_altered_link_is_no_link(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn, spoil: Any
) -> None:
    telegram.add_file("AgAD1", PHOTO, "photos/a.jpg", "image/jpeg")
    _, answer = await link_to(media_served, portal, "AgAD1")
    base, token = answer["url"].rsplit("/", 1)
    status, _, body = await fetch(media_served, f"{base}/{spoil(token)}")
    assert status == 404 and b"bad_link" in body
    assert telegram.calls_to("getFile") == []


async def test_a_file_telegram_no_longer_has_is_gone_with_its_words(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    _, answer = await link_to(media_served, portal, "AgADgone")
    status, _, body = await fetch(media_served, answer["url"])
    assert status == 404
    assert b"file_gone" in body and b"invalid file_id" in body


async def test_a_file_over_the_limit_is_refused_before_a_byte_is_fetched(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    telegram.add_file("BAAD", b"x" * (MAX_BYTES + 1), "videos/big.mp4", "video/mp4")
    _, answer = await link_to(media_served, portal, "BAAD")
    status, _, body = await fetch(media_served, answer["url"])
    assert status == 413 and b"too_large" in body
    assert telegram.downloads == []


async def test_a_body_larger_than_announced_is_refused_or_cut_off_at_the_limit(
    media_served: Served, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    body = b"x" * (MAX_BYTES * 3)
    telegram.add_file("BAAD", body, "videos/liar.mp4", "video/mp4", size=10)
    _, answer = await link_to(media_served, portal, "BAAD")
    status, _, refused = await fetch(media_served, answer["url"])
    assert status == 413 and b"too_large" in refused  # its Content-Length told

    telegram.add_file("BAAD", body, "videos/liar.mp4", "video/mp4", size=10, chunked=True)
    with pytest.raises(aiohttp.ClientPayloadError):  # only the bytes tell: cut at the limit
        await fetch(media_served, answer["url"])


async def test_link_requests_are_refused_with_reasons(
    media_served: Served, portal: PortalStandIn
) -> None:
    status, answer = await link_to(media_served, portal, "f", connector_id="nope")
    assert (status, answer["error"]) == (404, "not_found")
    status, answer = await link_to(media_served, portal, "f", connector_id="vk")
    assert (status, answer["error"]) == (422, "not_fetchable")
    status, answer = await link_to(media_served, portal, "")
    assert (status, answer["error"]) == (422, "invalid_payload")
    status, answer = await media_served.request(
        "POST", "/api/v1/media-links", b'{"connector_id": "tg", "file_id": "f"}'
    )
    assert status == 401  # unsigned


async def test_a_whatsapp_media_id_is_fetched_with_the_business_token(
    media_served: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    graph.whatsapp_media["1013546452693426"] = (PHOTO, "image/jpeg")
    status, answer = await link_to(media_served, portal, "1013546452693426", connector_id="wa")
    assert status == 200, answer
    status, headers, body = await fetch(media_served, answer["url"])
    assert (status, body, headers["Content-Type"]) == (200, PHOTO, "image/jpeg")
    assert graph.media_downloads == ["1013546452693426"]  # the URL took the bearer token


@pytest.mark.parametrize("file_id", ["999", "me/accounts", "1?fields=access_token"])
async def test_a_whatsapp_id_that_is_no_media_of_ours_is_gone_and_steers_nothing(
    media_served: Served, portal: PortalStandIn, graph: MetaGraphStandIn, file_id: str
) -> None:
    _, answer = await link_to(media_served, portal, file_id, connector_id="wa")
    status, _, body = await fetch(media_served, answer["url"])
    assert status == 404 and b"file_gone" in body
    asked = [call.node for call in graph.calls]
    assert asked == (["999"] if file_id == "999" else [])  # only a media id reaches Graph
