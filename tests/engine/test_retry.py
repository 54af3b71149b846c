"""The retry schedule, ``Retry-After`` parsing and the HTTP transport to portals."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.delivery.retry import backoff_delay_s, parse_retry_after
from engine.delivery.transport import HttpTransport

NOW = 1_800_000_000.0


class FixedRandom(random.Random):
    """A random source stuck at one draw, to see both ends of the jitter."""

    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    top = FixedRandom(1.0)
    ceilings = [backoff_delay_s(attempt, 0.5, 30.0, top) for attempt in range(10)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_jitter_draws_from_the_upper_half() -> None:
    assert backoff_delay_s(3, 1.0, 100.0, FixedRandom(0.0)) == 4.0
    assert backoff_delay_s(3, 1.0, 100.0, FixedRandom(0.5)) == 6.0


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    initial_s=st.floats(min_value=0.01, max_value=10),
    max_s=st.floats(min_value=0.01, max_value=3600),
    seed=st.integers(min_value=0),
)
def test_jitter_stays_within_half_ceiling_and_ceiling(
    attempt: int, initial_s: float, max_s: float, seed: int
) -> None:
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt, 62))
    delay = backoff_delay_s(attempt, initial_s, max_s, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling


def test_jittered_delays_spread_out() -> None:
    rng = random.Random(1)
    delays = {backoff_delay_s(5, 1.0, 100.0, rng) for _ in range(50)}
    assert len(delays) == 50


def test_retry_after_wins_over_backoff() -> None:
    rng = FixedRandom(1.0)
    assert backoff_delay_s(0, 0.5, 10.0, rng, retry_after_s=30.0) == 30.0
    assert backoff_delay_s(9, 0.5, 10.0, rng, retry_after_s=0.0) == 0.0
    assert backoff_delay_s(2, 0.5, 10.0, rng, retry_after_s=None) == 2.0


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("30", NOW) == 30.0
    assert parse_retry_after(" 120 ", NOW) == 120.0
    assert parse_retry_after("0", NOW) == 0.0


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after(formatdate(NOW + 90, usegmt=True), NOW) == 90.0
    assert parse_retry_after(formatdate(NOW - 90, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2027"])
def test_parse_retry_after_refuses_what_it_cannot_read(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# -- HttpTransport against a real server ------------------------------------------------------


class Portal:
    """A bare portal endpoint answering what each test sets."""

    def __init__(self) -> None:
        self.status = 204
        self.headers: dict[str, str] = {}
        self.text = ""
        self.hold = asyncio.Event()
        self.hold.set()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        await self.hold.wait()
        return web.Response(status=self.status, text=self.text, headers=self.headers)


@pytest.fixture
async def endpoint() -> AsyncIterator[Portal]:
    portal = Portal()
    app = web.Application()
    app.router.add_post("/in", portal.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    portal.url = f"http://127.0.0.1:{runner.addresses[0][1]}/in"
    try:
        yield portal
    finally:
        portal.hold.set()
        await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    async with aiohttp.ClientSession() as session:
        yield HttpTransport(session, ManualClock(NOW))


async def test_transport_posts_body_and_headers_and_accepts_2xx(
    endpoint: Portal, transport: HttpTransport
) -> None:
    outcome = await transport.post(endpoint.url, {"webhook-id": "bat_1"}, b"sealed", 5.0)
    assert (outcome.accepted, outcome.status, outcome.error) == (True, 204, "")
    headers, body = endpoint.received[0]
    assert (headers["webhook-id"], body) == ("bat_1", b"sealed")


async def test_transport_reports_status_body_and_retry_after(
    endpoint: Portal, transport: HttpTransport
) -> None:
    endpoint.status, endpoint.text = 503, "maintenance"
    endpoint.headers = {"Retry-After": "30"}
    outcome = await transport.post(endpoint.url, {}, b"x", 5.0)
    assert not outcome.accepted
    assert outcome.status == 503
    assert outcome.error == "HTTP 503: maintenance"
    assert outcome.retry_after_s == 30.0


async def test_transport_reads_an_http_date_retry_after_on_the_injected_clock(
    endpoint: Portal, transport: HttpTransport
) -> None:
    endpoint.status = 429
    endpoint.headers = {"Retry-After": formatdate(NOW + 45, usegmt=True)}
    outcome = await transport.post(endpoint.url, {}, b"x", 5.0)
    assert outcome.retry_after_s == 45.0


async def test_transport_turns_a_refused_connection_into_an_outcome(
    transport: HttpTransport,
) -> None:
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = probe.addresses[0][1]
    await probe.cleanup()  # nothing listens there any more
    outcome = await transport.post(f"http://127.0.0.1:{port}/in", {}, b"x", 5.0)
    assert (outcome.accepted, outcome.status) == (False, None)
    assert outcome.error.startswith("ClientConnectorError")


async def test_transport_gives_up_after_the_request_timeout(
    endpoint: Portal, transport: HttpTransport
) -> None:
    endpoint.hold.clear()
    outcome = await transport.post(endpoint.url, {}, b"x", 0.05)
    assert (outcome.accepted, outcome.status) == (False, None)
    assert "Timeout" in outcome.error
