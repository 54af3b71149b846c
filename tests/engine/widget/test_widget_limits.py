"""The widget's rate limits held engine-wide by several channel actors (docs/channels/
widget.md, "Rate limits"): each decides alone, the engine's ``RateLedger`` relays what
each admitted, and together they admit at most the stated bound beyond one bucket.
Logic without Ray: the actors' ``RateLimits`` and one ledger, on a manual clock."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.widget.limits import RateLimits
from engine.clock import ManualClock
from engine.errors import RateLimitedError, UnavailableError
from engine.rate_ledger import Consumed, RateLedger, unreported_cap
from tests.engine.conftest import eventually
from tests.engine.one_process import Served
from tests.engine.widget.widget_kit import VisitorClient

Share = Callable[[dict[str, Consumed]], Awaitable[dict[str, float]]]


def ledger_of(ledger: RateLedger, clock: ManualClock) -> Share:
    async def share(consumed: dict[str, Consumed]) -> dict[str, float]:
        return ledger.exchange(consumed, clock.now())

    return share


async def admitted(limits: RateLimits, key: str, per_minute: int) -> bool:
    try:
        await limits.take(key, per_minute, "requests")
    except RateLimitedError:
        return False
    return True


async def test_two_actors_admit_one_limit_between_them_not_two() -> None:
    clock, ledger = ManualClock(), RateLedger()
    actors = [RateLimits(clock.now, 2, ledger_of(ledger, clock)) for _ in range(2)]
    taken = [0, 0]
    for n in range(200):  # a visitor's requests spread over both actors, no time passing
        if await admitted(actors[n % 2], "v:1", 30):
            taken[n % 2] += 1
    # Today's per-actor buckets would have let 60 through; the bound is 30 + 2 shares of 4.
    assert 30 <= sum(taken) <= 30 + 2 * unreported_cap(30, 2), taken
    for limits in actors:
        await limits.sync()
    with pytest.raises(RateLimitedError, match="over 30 a minute"):
        await actors[0].take("v:1", 30, "requests")
    await clock.advance(60)  # a minute refills the engine's one bucket: 30 again, in all
    again = [await admitted(actors[n % 2], "v:1", 30) for n in range(100)]
    assert 30 <= sum(again) <= 30 + 2 * unreported_cap(30, 2)
    assert await admitted(actors[0], "v:2", 30)  # another visitor is not held up


async def test_one_actor_alone_admits_exactly_the_limit_and_waits_it_out() -> None:
    clock, ledger = ManualClock(), RateLedger()
    limits = RateLimits(clock.now, 3, ledger_of(ledger, clock))
    results = [await admitted(limits, "ip:1", 12) for _ in range(20)]
    assert sum(results) == 12 and results[:12] == [True] * 12
    with pytest.raises(RateLimitedError) as refused:
        await limits.take("ip:1", 12, "requests from here")
    assert refused.value.retry_after_s == 5  # a token every 5 s
    await clock.advance(5)
    assert await admitted(limits, "ip:1", 12)


async def test_without_the_ledger_an_actor_limits_alone_and_reports_later() -> None:
    clock, ledger = ManualClock(), RateLedger()
    reachable = False

    async def share(consumed: dict[str, Consumed]) -> dict[str, float]:
        if not reachable:
            raise UnavailableError("engine part unavailable, retry: the registry restarts")
        return ledger.exchange(consumed, clock.now())

    limits = RateLimits(clock.now, 2, share)
    results = [await admitted(limits, "v:1", 30) for _ in range(40)]
    assert sum(results) == 30  # its own bucket still holds
    with pytest.raises(UnavailableError):
        await limits.sync()
    reachable = True
    await limits.sync()
    other = RateLimits(clock.now, 2, ledger_of(ledger, clock))
    assert await admitted(other, "v:1", 30)  # knows nothing yet: its share, then the ledger
    await other.sync()
    assert not await admitted(other, "v:1", 30)  # the 30 reported late are counted


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 4),
    st.integers(1, 60),
    st.lists(
        st.tuples(
            st.sampled_from(["take"] * 12 + ["sync", "wait"]),  # bursts between reports
            st.integers(0, 3),
            st.integers(0, 4),
        ),
        max_size=400,
    ),
)
@example(2, 30, [("take", n % 2, 0) for n in range(80)])  # no report but the shares' own
@example(4, 60, [("take", n % 4, 0) for n in range(100)] + [("wait", 0, 4)] * 3)
def test_the_actors_together_admit_at_most_the_stated_bound(
    actors_n: int, per_minute: int, steps: list[tuple[str, int, int]]
) -> None:
    """Whatever the interleaving of requests, reports and time: by any moment T the
    engine admitted at most ``limit + rate * T + actors * share`` (docs: "Rate limits")."""
    asyncio.run(interleaved(actors_n, per_minute, steps))


async def interleaved(actors_n: int, per_minute: int, steps: list[tuple[str, int, int]]) -> None:
    clock, ledger = ManualClock(0.0), RateLedger()
    actors = [RateLimits(clock.now, actors_n, ledger_of(ledger, clock)) for _ in range(actors_n)]
    share = max(1, math.ceil(per_minute / (4 * actors_n)))  # as the docs state it
    assert share == unreported_cap(per_minute, actors_n)
    total = 0
    for what, which, seconds in steps:
        limits = actors[which % actors_n]
        if what == "take":
            total += await admitted(limits, "k", per_minute)
        elif what == "sync":
            await limits.sync()
        else:
            await clock.advance(seconds)
        allowed = per_minute + per_minute / 60.0 * clock.now() + actors_n * share
        assert total <= allowed, (total, allowed)


async def test_the_engines_channel_actors_report_to_its_ledger(
    widget_served: Served,
) -> None:
    """Through the engine's app: the widget's API reports what it admitted (its loop),
    and the ledger's bucket of the visitor's key holds it."""
    visitor = await VisitorClient(widget_served).start()
    for n in range(3):
        assert (await visitor.send(f"m{n}", f"c-{n}"))[0] == 200
    ledger, now = widget_served.engine.ledger, widget_served.engine.clock.now
    key = f"v:{visitor.visitor_id}"
    # 5 a minute in the kit, 3 sent: 2 left engine-wide once the loop reported them all.
    await eventually(lambda: ledger.level(key, now()) == 2.0, what="the visitor's 3 reported")
