"""The polling loop through the real actors (docs/channels/contract.md, "Polling"): a
Telegram connector polls ``getUpdates`` from channel actor 0 on the engine's manual clock,
moved through the admin API. Channel actor 0 is killed (``SIGKILL``) while a poll is in
flight: Ray restarts it, the loop resumes in the new process from the stored cursor, and
every update reaches the portal exactly once, in order. Nothing is slept: each step waits
for an event with a deadline."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.actors.test_faults import health_when, until
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, text_update

pytestmark = pytest.mark.usefixtures("ray_session")

INTERVAL_S = 10.0
RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}]},
    }
}


@pytest.fixture
async def engine(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> AsyncIterator[RunningEngine]:
    connector = {
        "id": "tgp",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "bot_token": telegram.token,
            "api_base_url": telegram.base_url,
            "poll_interval_s": INTERVAL_S,
        },
    }
    config = engine_config(
        tmp_path, [portal.portal_config(linger_ms=0)], [connector], RULES, clock="manual"
    )
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


def offsets(telegram: TelegramApiStandIn) -> list[int | None]:
    """The ``offset`` of every ``getUpdates``: the cursor each poll started from."""
    found = [call.params.get("offset") for call in telegram.calls_to("getUpdates")]
    return [None if offset is None else int(offset) for offset in found]


def delivered(portal: PortalStandIn) -> list[str]:
    """The texts of the distinct message events (a batch sent again repeats its ids, which
    the portal de-duplicates on), in the order they reached the portal."""
    seen: dict[str, str] = {}
    for event in portal.of_types("message."):
        seen.setdefault(event["id"], event["data"]["content"]["text"])
    return list(seen.values())


async def polls_after(engine: RunningEngine, telegram: TelegramApiStandIn, count: int) -> None:
    """Move the engine's clock an interval at a time until a poll beyond ``count`` was made
    (a restarted actor's clock starts behind the others', so one step may not be enough)."""

    async def polled() -> bool | None:
        if len(offsets(telegram)) > count:
            return True
        await engine.advance(INTERVAL_S)
        return None

    await until(polled, f"poll number {count + 1}")


async def test_polling_resumes_in_a_restarted_channel_actor_0_without_repeats_or_gaps(
    engine: RunningEngine, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    await until(when(lambda: len(offsets(telegram)) >= 1), "the loop's first poll")
    for update_id, text in ((10, "первое 👋"), (11, "second"), (12, "third")):
        telegram.queue_update(text_update(update_id, 42, text))
    await polls_after(engine, telegram, len(offsets(telegram)))
    await portal.wait_for(lambda p: len(delivered(p)) == 3, timeout_s=60)
    assert offsets(telegram)[-1] is None  # nothing stored before: Telegram's oldest first

    # A poll in flight: Telegram has the request and answers it, the answer never arrives.
    telegram.queue_update(text_update(13, 42, "fourth, fetched when the actor died"))
    telegram.queue_update(text_update(14, 42, "fifth"))
    held = telegram.hold_next("getUpdates")
    before = len(offsets(telegram))
    await polls_after(engine, telegram, before)
    await until(when(held.is_set), "the held getUpdates")
    assert offsets(telegram)[before] == 13  # the cursor after update 12

    victim = engine.actors.channels[0]
    pid = await victim.pid.remote()
    os.kill(pid, signal.SIGKILL)
    telegram.queue_update(text_update(15, 42, "sixth, written while it was down"))
    await health_when(engine, 200, [])
    assert await victim.pid.remote() != pid, "the same process answers"

    restarted_from = len(offsets(telegram))
    await polls_after(engine, telegram, restarted_from)
    await portal.wait_for(lambda p: len(delivered(p)) == 6, timeout_s=60)
    # The new process polled from the stored cursor: not past it (nothing skipped), not
    # before it (nothing stored again).
    assert offsets(telegram)[restarted_from] == 13
    assert delivered(portal) == [
        "первое 👋",
        "second",
        "third",
        "fourth, fetched when the actor died",
        "fifth",
        "sixth, written while it was down",
    ]
    keys = [e["data"]["channel_event_id"] for e in portal.of_types("message.")]
    ids = {e["data"]["channel_event_id"]: e["id"] for e in portal.of_types("message.")}
    assert len(ids) == 6 and set(keys) == set(ids)  # one event id per update

    # And the loop goes on in the new process: the next poll confirms everything.
    await polls_after(engine, telegram, len(offsets(telegram)))
    assert offsets(telegram)[-1] == 16
    assert len(delivered(portal)) == 6


def when(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool | None]]:
    """``predicate`` as a check for ``until``."""

    async def check() -> bool | None:
        return True if predicate() else None

    return check
