"""Keys fetched for asynchronous verification (channels.key_cache), from a key server
stand-in on 127.0.0.1, on a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from channels.key_cache import KeyCache
from engine.clock import ManualClock
from engine.errors import AuthError, UnavailableError
from tests.standins.key_server import KeyServerStandIn


@pytest.fixture
async def server() -> AsyncIterator[KeyServerStandIn]:
    async with KeyServerStandIn() as keys:
        yield keys


@pytest.fixture
async def cache(server: KeyServerStandIn) -> AsyncIterator[tuple[KeyCache[str], ManualClock]]:
    clock = ManualClock()
    async with aiohttp.ClientSession() as session:

        async def fetch() -> Mapping[str, str]:
            async with session.get(server.url) as response:
                if response.status != 200:
                    raise UnavailableError(f"key server: HTTP {response.status}")
                body = await response.json()
            return {key["kid"]: key["k"] for key in body["keys"]}

        yield KeyCache(fetch, clock, ttl_s=3600, min_refetch_s=60), clock


async def test_keys_are_fetched_once_and_kept_for_their_ttl(
    server: KeyServerStandIn, cache: tuple[KeyCache[str], ManualClock]
) -> None:
    keys, clock = cache
    got = await asyncio.gather(*(keys.key("k1") for _ in range(5)))
    assert got == ["secret-1"] * 5 and server.fetches == 1  # concurrent callers share one
    await clock.advance(3599)
    assert await keys.key("k1") == "secret-1" and server.fetches == 1
    await clock.advance(1)
    assert await keys.key("k1") == "secret-1" and server.fetches == 2


async def test_a_rotated_key_is_fetched_and_made_up_ids_do_not_hammer_the_provider(
    server: KeyServerStandIn, cache: tuple[KeyCache[str], ManualClock]
) -> None:
    keys, clock = cache
    await keys.key("k1")
    await clock.advance(60)
    server.keys = {"k2": "secret-2"}
    assert await keys.key("k2") == "secret-2" and server.fetches == 2
    for made_up in ("x1", "x2", "x3"):
        with pytest.raises(AuthError, match="does not publish"):
            await keys.key(made_up)
    assert server.fetches == 2  # within min_refetch_s: no fetch for unknown ids


async def test_a_provider_that_is_down_is_503_without_keys_and_old_keys_serve_meanwhile(
    server: KeyServerStandIn, cache: tuple[KeyCache[str], ManualClock]
) -> None:
    keys, clock = cache
    server.down = True
    with pytest.raises(UnavailableError, match="HTTP 503"):
        await keys.key("k1")
    server.down = False
    assert await keys.key("k1") == "secret-1"
    server.down = True
    await clock.advance(3600)  # stale: refetch fails, the old key still verifies
    assert await keys.key("k1") == "secret-1"
    fetches = server.fetches
    assert await keys.key("k1") == "secret-1" and server.fetches == fetches  # not at once
    server.down = False
    await clock.advance(60)
    assert await keys.key("k1") == "secret-1" and server.fetches == fetches + 1
