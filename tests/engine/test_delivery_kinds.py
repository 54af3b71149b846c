"""What ``seq`` and ``best_effort`` promise, for each portal delivery kind and event kind.

The rule (docs/protocol.md, "Ordering and de-duplication"): an event that may be dropped
never takes a ``seq`` and says ``best_effort: true``; on a ``best_effort`` portal every
event may be dropped. Every ``seq`` therefore reaches the portal or is listed in dead
letters: a gap in ``seq`` is either still coming or dead-lettered, never lost to best effort.
The kind is fixed when the event goes into a batch.
"""

from __future__ import annotations

from typing import Any

from engine.delivery.host import MailboxHost
from engine.ids import new_id
from engine.store.records import DeadLetter
from tests.engine.conftest import HostKit, eventually
from tests.standins.portal import PortalStandIn, ScriptedFailure

Event = dict[str, Any]


def shape(events: list[Event]) -> list[tuple[str, int | None, bool]]:
    return [(e["type"], e["seq"], e["best_effort"]) for e in events]


async def dead_letters(host: MailboxHost) -> list[DeadLetter]:
    return await host.dead_letters("p1", new_id("req"), limit=100, after_event_id=None)


def counted(host: MailboxHost, name: str) -> float:
    return host.counters.value(name, portal="p1")


async def assert_every_seq_accounted_for(host: MailboxHost, portal: PortalStandIn) -> None:
    """Each seq 1..n went to the portal or to dead letters, exactly once; nothing else."""
    letters = await dead_letters(host)
    dead = [letter.seq for letter in letters if letter.seq is not None]
    assert len(dead) == len(letters)  # only guaranteed events are dead-lettered
    delivered: list[int] = [e["seq"] for e in portal.events if e["seq"] is not None]
    every = sorted(delivered + dead)
    assert every == list(range(1, len(every) + 1))


async def test_guaranteed_portal_guaranteed_events_take_seqs_a_lost_seq_is_a_dead_letter(
    kit: HostKit, portal: PortalStandIn
) -> None:
    config = kit.config(portal, linger_ms=0, ttl_s=10, retry_initial_s=1, retry_max_s=1)
    host = await kit.host(config)
    portal.failures.extend(ScriptedFailure(500) for _ in range(1000))  # down past the TTL
    await host.append([kit.record("42", 1), kit.record("7", 1)])
    await kit.pump(lambda: counted(host, "openlines_dead_lettered_total") == 4, step_s=1)
    portal.failures.clear()  # back up

    await host.append([kit.record("42", 2)])
    events = await portal.wait_for_events(1)
    assert shape(events) == [("message.received", 5, False)]  # 1-4: the gap before it
    letters = await dead_letters(host)
    assert [(d.kind, d.seq) for d in letters] == [
        ("dialog.queued", 1),
        ("message.received", 2),
        ("dialog.queued", 3),
        ("message.received", 4),
    ]
    await assert_every_seq_accounted_for(host, portal)
    assert counted(host, "openlines_dropped_total") == 0


async def test_guaranteed_portal_best_effort_events_take_no_seq_and_are_dropped_on_failure(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, retry_initial_s=1, retry_max_s=1))
    portal.failures.append(ScriptedFailure(500))
    await host.append(
        [
            kit.record("42", 1),
            kit.record("42", 2, delivery="best_effort", text="typing"),
            kit.record("42", 3),
        ]
    )
    await eventually(lambda: portal.attempts == 1 and kit.clock.sleepers == 1)
    assert counted(host, "openlines_dropped_total") == 1  # its one attempt failed
    await kit.clock.advance(1)
    await portal.wait_for_events(3)
    await host.append([kit.record("42", 4, delivery="best_effort", text="typing again")])
    events = await portal.wait_for_events(4)
    assert shape(events) == [
        ("dialog.queued", 1, False),
        ("message.received", 2, False),
        ("message.received", 3, False),  # the failed typing signal left no gap
        ("message.received", None, True),  # one that got through: still no seq
    ]
    assert [e["data"]["content"]["text"] for e in events[1:]] == [
        "42 says 1",
        "42 says 3",
        "typing again",
    ]
    assert await dead_letters(host) == []
    await assert_every_seq_accounted_for(host, portal)


async def test_best_effort_portal_guaranteed_events_take_no_seq_and_are_dropped_on_failure(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, delivery="best_effort"))
    portal.failures.append(ScriptedFailure(503, "5"))
    await host.append([kit.record("42", 1), kit.record("42", 2)])
    await eventually(lambda: counted(host, "openlines_dropped_total") == 3)
    await kit.clock.advance(60)  # past the Retry-After: nothing is tried again
    assert portal.attempts == 1

    await host.append([kit.record("42", 3)])
    (event,) = await portal.wait_for_events(1)
    assert shape([event]) == [("message.received", None, True)]
    assert await dead_letters(host) == []
    assert (await host.gauges())["p1"] == (0, 0, 0)

    # the dropped events took no numbers: once guaranteed, the portal's seq starts at 1
    await host.configure([kit.config(portal, linger_ms=0)])
    await host.append([kit.record("42", 4)])
    later = (await portal.wait_for_events(2))[1]
    assert shape([later]) == [("message.received", 1, False)]
    await assert_every_seq_accounted_for(host, portal)


async def test_best_effort_portal_best_effort_events_take_no_seq_and_are_dropped_on_failure(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0, delivery="best_effort"))
    portal.failures.append(ScriptedFailure(500))
    await host.append([kit.record("42", 1, delivery="best_effort", text="typing")])
    await eventually(lambda: counted(host, "openlines_dropped_total") == 2)  # queued, typing
    await host.append([kit.record("42", 2, delivery="best_effort", text="typing again")])
    (event,) = await portal.wait_for_events(1)
    assert shape([event]) == [("message.received", None, True)]
    assert event["data"]["content"]["text"] == "typing again"
    assert portal.attempts == 2
    assert await dead_letters(host) == []
    assert (await host.gauges())["p1"] == (0, 0, 0)


async def test_an_events_kind_is_fixed_when_it_is_batched(
    kit: HostKit, portal: PortalStandIn
) -> None:
    """A portal switched to best effort keeps the promise made to events already numbered:
    they are retried to the TTL and dead-lettered, never dropped into a silent gap."""
    config = kit.config(portal, linger_ms=0, ttl_s=10, retry_initial_s=1, retry_max_s=1)
    host = await kit.host(config)
    portal.failures.extend(ScriptedFailure(500) for _ in range(1000))
    await host.append([kit.record("42", 1)])
    await eventually(lambda: portal.attempts == 1)
    (claimed,) = kit.reader().open_batches("p1")
    assert [(e.seq, e.best_effort) for e in claimed.events] == [(1, False), (2, False)]

    await host.configure([kit.config(portal, linger_ms=0, ttl_s=10, delivery="best_effort")])
    await kit.pump(lambda: counted(host, "openlines_dead_lettered_total") == 2, step_s=1)
    assert [letter.seq for letter in await dead_letters(host)] == [1, 2]
    assert counted(host, "openlines_dropped_total") == 0
    assert portal.attempts > 1  # retried after the switch

    portal.failures.clear()
    await host.append([kit.record("42", 2)])
    (event,) = await portal.wait_for_events(1)
    assert shape([event]) == [("message.received", None, True)]  # new ones: best effort
    await assert_every_seq_accounted_for(host, portal)
