"""An actor dies under load: it comes back by itself, nothing acknowledged is lost, and the
lights stay on meanwhile (``/healthz`` names what is down, ``/metrics`` keeps answering).

A fault is made visible first by stopping the actor's process (``SIGSTOP``: it hangs, so
the checks of the fault do not race Ray's restart), then it is ended with ``SIGKILL``, which
Ray answers with a restart. Each step waits for an event with a deadline, never a timer.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import ray
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from actors.remote import call
from engine.errors import NotFoundError, PartFailedError, UnavailableError
from engine.metrics import Counters
from engine.web.middleware import RETRY_AFTER_S, error_middleware
from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn, ScriptedFailure

T = TypeVar("T")

DEADLINE_S = 60.0
PROVIDER_PAUSE_S = 0.05
"""A provider's pause before it retries a refused webhook (theirs, not a test's wait)."""

RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {
            "members": [{"operator": "anna"}],
            "distribution": "strictly",
            "require_accept": False,
        },
    }
}


@dataclass
class Provider:
    """Posts custom-connector webhooks for a few chats, one connection per chat, retrying a
    refused webhook until it is acknowledged, as providers do; keeps every answer."""

    engine: RunningEngine
    chats: int = 3
    acked: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, str | None, Any]] = field(default_factory=list)
    """(status, Retry-After, body) of every answer that was not a 200."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _more: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> None:
        await asyncio.gather(*(self._chat(f"chat-{c}") for c in range(self.chats)))

    async def _chat(self, chat: str) -> None:
        sequence = 0
        url = self.engine.hook_url("custom", "shop")
        while not self._stop.is_set():
            batch = [custom_message(chat, sequence + i, f"{chat}/{sequence + i}") for i in (0, 1)]
            body, headers = signed_custom_request(batch)
            try:
                async with self.engine.session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    status, retry_after = response.status, response.headers.get("Retry-After")
            except aiohttp.ClientConnectionError as exc:  # the process behind it died
                status, retry_after, answer = 0, None, repr(exc).encode()
            if status == 200:
                async with self._more:
                    self.acked.extend(batch)
                    self._more.notify_all()
                sequence += 2
                continue
            self.answers.append((status, retry_after, answer.decode(errors="replace")))
            await asyncio.sleep(PROVIDER_PAUSE_S)

    async def wait_for_acks(self, more: int) -> None:
        """Until ``more`` messages beyond those acknowledged now were acknowledged."""
        async with self._more:
            target = len(self.acked) + more
            await asyncio.wait_for(
                self._more.wait_for(lambda: len(self.acked) >= target), DEADLINE_S
            )

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
async def engine(tmp_path: Path, portal: PortalStandIn) -> AsyncIterator[RunningEngine]:
    config = engine_config(
        tmp_path, [portal.portal_config(linger_ms=5)], [custom_connector()], RULES
    )
    running = await start_engine(config)
    portal.engine_public_key_b64 = running.engine_public_key_b64
    yield running
    await stop_engine(running)


async def until(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Ask ``check`` again and again until it returns something; fail after the deadline."""

    async def loop() -> T:
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.05)

    try:
        return await asyncio.wait_for(loop(), DEADLINE_S)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE_S:.0f} s: {what}") from None


async def health_when(
    engine: RunningEngine, status: int, down: list[str]
) -> tuple[dict[str, Any], str | None]:
    """``/healthz`` once it answers ``status`` naming exactly ``down``, and its Retry-After."""

    async def check() -> tuple[dict[str, Any], str | None] | None:
        async with engine.session.get(f"{engine.base_url}/healthz") as response:
            body = await response.json()
            if response.status == status and body["down"] == down:
                return body, response.headers.get("Retry-After")
        return None

    return await until(check, f"/healthz {status} with {down} down")


async def actor_up(engine: RunningEngine, actor: str) -> float:
    return (await engine.metrics())[f'openlines_actor_up{{actor="{actor}"}}']


def check_delivered_once_in_order(portal: PortalStandIn, acked: list[dict[str, Any]]) -> None:
    """Every acknowledged message reached the portal as exactly one event (a batch sent
    again after a crash repeats the same ids, which the portal de-duplicates on), each chat
    in the order it was written, one dialog per chat, ``seq`` without gaps or repeats."""
    first_seen: dict[str, dict[str, Any]] = {}
    for event in portal.events:
        first_seen.setdefault(event["id"], event)
    events = list(first_seen.values())
    messages = [e for e in events if e["type"].startswith("message.")]
    per_message = Counter(e["data"]["channel_event_id"] for e in messages)
    assert [m for m, n in per_message.items() if n > 1] == [], "a message became two events"
    missing = [m["event_id"] for m in acked if m["event_id"] not in per_message]
    assert missing == [], f"{len(missing)} acknowledged messages never delivered"
    for chat in {m["chat_id"] for m in acked}:
        of_chat = [e for e in messages if e["data"]["dialog_key"] == chat]
        delivered = [e["data"]["order_key"] for e in of_chat]
        assert delivered == sorted(delivered), f"{chat} out of order"
        [dialog_id] = {e["dialog"]["id"] for e in of_chat}
        opened = [
            e for e in events if e["dialog"]["id"] == dialog_id and e["type"] == "dialog.queued"
        ]
        assert len(opened) == 1, f"{chat}: its dialog opened {len(opened)} times"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq with a gap, a repeat or out of order"


# -- a portal actor --------------------------------------------------------------------------


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("hung_first", [True, False], ids=["hung-then-killed", "killed"])
async def test_a_killed_portal_actor_restarts_by_itself_and_loses_nothing_acknowledged(
    engine: RunningEngine, portal: PortalStandIn, hung_first: bool
) -> None:
    provider = Provider(engine)
    sending = asyncio.create_task(provider.run())
    host = engine.actors.hosts["portal-acme"]
    pid = await host.pid.remote()
    api_answers: list[tuple[int, Any]] = []
    try:
        await provider.wait_for_acks(30)
        if hung_first:
            os.kill(pid, signal.SIGSTOP)
            body, retry_after = await health_when(engine, 503, ["portal-acme"])
            assert body["status"] == "degraded" and retry_after == str(RETRY_AFTER_S)
            assert "no answer" in body["reasons"]["portal-acme"]
            assert body["rules_version"] == 1 and body["rules_error"] is None
            assert await actor_up(engine, "portal-acme") == 0
            assert await actor_up(engine, "registry") == 1
            # An operator's call that reaches the hung actor: cut off by its death below.
            api = asyncio.create_task(
                engine.portal_call(
                    portal, "PUT", "/api/v1/operators/anna/status", {"status": "online"}
                )
            )
        os.kill(pid, signal.SIGKILL)
        if hung_first:
            api_answers.append(await api)
        await health_when(engine, 200, [])
        assert await host.pid.remote() != pid, "the same process answers"
        assert await actor_up(engine, "portal-acme") == 1
        await provider.wait_for_acks(30)
        api_answers.append(
            await engine.portal_call(
                portal, "PUT", "/api/v1/operators/anna/status", {"status": "online"}
            )
        )
    finally:
        provider.stop()
        await sending

    # What was refused meanwhile was refused as "retry later", never as a failure.
    for status, retry_after, body in provider.answers:
        assert (status, retry_after) == (503, str(RETRY_AFTER_S)), body
    for status, body in api_answers[:-1]:
        assert status == 200 or (status, body["error"]) == (503, "unavailable"), body
    assert api_answers[-1][0] == 200, api_answers[-1]
    acked_ids = {m["event_id"] for m in provider.acked}
    await portal.wait_for(
        lambda p: acked_ids <= {e["data"]["channel_event_id"] for e in p.messages()},
        timeout_s=DEADLINE_S,
    )
    check_delivered_once_in_order(portal, provider.acked)


@pytest.mark.usefixtures("ray_session")
async def test_a_restarted_portal_actor_resumes_delivery_by_itself(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    """Nobody calls ``start()`` after a restart, and no traffic comes: the actor starts
    itself and delivers what waited in its outbox."""
    portal.failures = [ScriptedFailure(503)] * 100_000  # the portal is down
    messages = [custom_message("c", i, f"m{i}") for i in range(5)]
    assert (await engine.push_custom(messages))[0] == 200

    async def retried() -> bool | None:
        return True if portal.attempts >= 2 else None

    await until(retried, "the engine retrying its delivery to the portal")
    host = engine.actors.hosts["portal-acme"]
    pid = await host.pid.remote()
    os.kill(pid, signal.SIGKILL)
    portal.failures.clear()  # the portal is back; nothing calls the engine from here on
    events = await portal.wait_for_events(5, "message.", timeout_s=DEADLINE_S)
    assert [e["data"]["content"]["text"] for e in events] == [f"m{i}" for i in range(5)]
    assert [e["type"] for e in portal.events] == ["dialog.queued"] + ["message.received"] * 5


# -- channel actor 0, the registry's host ----------------------------------------------------

ASK_S = 5.0
"""How long one question to a port shared with a stopped actor waits (more than
``HEALTH_TIMEOUT_S``, the wait of the live actor for the stopped one)."""


async def health_from_a_live_actor(engine: RunningEngine, down: list[str]) -> dict[str, Any]:
    """``/healthz`` answering 503 naming exactly ``down``, asked on a new connection each
    time: the channel actors share the port (``SO_REUSEPORT``), and a connection the kernel
    gives a stopped actor hangs, so it is given up after ``ASK_S`` and asked again."""

    async def check() -> dict[str, Any] | None:
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=ASK_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            try:
                async with session.get(f"{engine.base_url}/healthz") as response:
                    body: dict[str, Any] = await response.json()
            except TimeoutError:  # the stopped actor's connection
                return None
        return body if response.status == 503 and body["down"] == down else None

    return await until(check, f"/healthz 503 with {down} down")


@pytest.mark.usefixtures("ray_session")
async def test_while_channel_actor_0_and_its_registry_are_down_delivery_goes_on_and_changes_wait(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    host = engine.actors.channels[0]
    # An admin change before the fault: a restart must keep it (not re-read the config).
    changed = portal.portal_config(linger_ms=7)  # the config file says 5
    status, body = await engine.admin("PUT", "/admin/v1/portals/acme", changed)
    assert status == 200, body
    version_before = body["registry_version"]
    provider = Provider(engine)
    sending = asyncio.create_task(provider.run())
    pid = await host.pid.remote()
    try:
        await provider.wait_for_acks(20)
        os.kill(pid, signal.SIGSTOP)
        # Channel actor 1 answers for the engine: the registry is down with its host.
        body = await health_from_a_live_actor(engine, ["channel-0", "registry"])
        assert body["rules_version"] is None  # unknown while the registry does not answer
        assert body["registry_version"] >= version_before  # channel actor 1's copy serves

        os.kill(pid, signal.SIGKILL)
        # A change asked while the registry recovers waits for it, or is refused as
        # "retry later"; existing dialogs keep flowing through the other parts meanwhile.
        change = asyncio.create_task(
            engine.admin("PUT", "/admin/v1/connectors/shop2", custom_connector("shop2"))
        )
        await provider.wait_for_acks(30)
        acked_ids = {m["event_id"] for m in provider.acked}
        await portal.wait_for(
            lambda p: acked_ids <= {e["data"]["channel_event_id"] for e in p.messages()},
            timeout_s=DEADLINE_S,
        )
        status, body = await change
        assert status == 200 or (status, body["error"]) == (503, "unavailable"), body

        async def change_applied() -> int | None:
            status, body = await engine.admin(
                "PUT", "/admin/v1/connectors/shop2", custom_connector("shop2")
            )
            assert status in (200, 503), body
            return int(body["registry_version"]) if status == 200 else None

        assert await until(change_applied, "the connector change after the restart") > (
            version_before
        )
        health, _ = await health_when(engine, 200, [])
        assert await host.pid.remote() != pid
        assert health["rules_version"] == 2  # the restart publishes the rules anew, newer
        assert await actor_up(engine, "registry") == 1
        await provider.wait_for_acks(10)
    finally:
        provider.stop()
        await sending

    stored = await host.registry_call.remote("registry")
    assert stored.portals["acme"].linger_ms == 7
    # Every portal actor follows the recovered registry: it takes a reload...
    status, body = await engine.admin("POST", "/admin/v1/rules/reload")
    assert (status, body) == (200, {"rules_version": 3})
    # ... and the connector added after the restart carries messages.
    status, body = await engine.push_custom([custom_message("via-shop2", 1, "new")], "shop2")
    assert status == 200, body
    await portal.wait_for(
        lambda p: any(e["data"]["dialog_key"] == "via-shop2" for e in p.messages()),
        timeout_s=DEADLINE_S,
    )
    # Refused webhooks were "retry later"; connections to the killed actor were cut.
    for status, retry_after, answer in provider.answers:
        assert status == 0 or (status, retry_after) == (503, str(RETRY_AFTER_S)), answer
    check_delivered_once_in_order(portal, provider.acked)


@pytest.mark.usefixtures("ray_session")
async def test_a_channel_actor_other_than_0_refuses_registry_calls_naming_the_host(
    engine: RunningEngine,
) -> None:
    """Asking another channel actor for the registry is a wiring bug: a 500 that names
    where the registry is, never a 503 that would be retried for ever."""
    other = engine.actors.channels[1]
    refused = r"channel-1 hosts no registry: the registry is on channel-0"
    with pytest.raises(PartFailedError, match=refused):
        await call(other.registry_call.remote("ready"))
    with pytest.raises(NotFoundError, match="no registry call 'close'"):
        await call(engine.actors.channels[0].registry_call.remote("close"))


# -- the HTTP answer to a part that is down (no Ray needed) --------------------------------


async def answer_to(raised: BaseException) -> tuple[int, str | None, dict[str, Any]]:
    """What a client gets when a handler's actor call raised ``raised`` (translated by
    ``actors.remote.call``, answered by the handlers' middleware)."""

    async def actor_call() -> None:
        raise raised

    async def handler(request: web.Request) -> web.Response:
        await call(actor_call())
        return web.Response()

    app = web.Application(middlewares=[error_middleware(Counters(), 1024)])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        body = await response.json()
        return response.status, response.headers.get("Retry-After"), body


@pytest.mark.parametrize(
    "raised",
    [
        ray.exceptions.ActorUnavailableError("The actor is temporarily unavailable", None),
        ray.exceptions.ActorDiedError(),
        ray.exceptions.RayTaskError("append", "", ray.exceptions.ActorDiedError()),  # type: ignore[no-untyped-call]
        UnavailableError("portal actor portal-acme is starting: not started yet"),
        TimeoutError(),
    ],
    ids=["in-flight-at-death", "dead", "its-callee-died", "starting", "timeout"],
)
async def test_a_part_that_is_down_is_answered_503_with_retry_after(
    raised: BaseException,
) -> None:
    status, retry_after, body = await answer_to(raised)
    assert (status, retry_after, body["error"]) == (503, str(RETRY_AFTER_S), "unavailable")


async def test_an_actors_own_error_is_a_500_not_a_retry() -> None:
    raised = ray.exceptions.RayTaskError("append", "", ValueError("a bug"))  # type: ignore[no-untyped-call]
    status, retry_after, body = await answer_to(raised)
    assert (status, retry_after, body["error"]) == (500, None, "internal_error")


@pytest.mark.usefixtures("ray_session")
async def test_health_and_metrics_of_an_engine_whose_actors_are_fine(
    engine: RunningEngine,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{engine.base_url}/healthz") as response:
            assert response.status == 200
            body = await response.json()
    assert body["status"] == "ok" and body["down"] == [] and body["actors"] == 4
    metrics = await engine.metrics()
    up = {name: value for name, value in metrics.items() if name.startswith("openlines_actor_up")}
    assert up == {
        f'openlines_actor_up{{actor="{name}"}}': 1.0
        for name in ("registry", "channel-0", "channel-1", "portal-acme")
    }


@pytest.mark.usefixtures("ray_session")
async def test_a_killed_channel_actor_restarts_and_hands_off_what_it_acknowledged(
    engine: RunningEngine, portal: PortalStandIn
) -> None:
    """Its intake is on disk: what it answered 200 for reaches the portal after its restart,
    while the other channel actor keeps the port answering and routing goes on."""
    provider = Provider(engine, chats=4)
    sending = asyncio.create_task(provider.run())
    victim = engine.actors.channels[1]
    pid = await victim.pid.remote()
    try:
        await provider.wait_for_acks(40)
        os.kill(pid, signal.SIGKILL)
        await provider.wait_for_acks(40)  # the other actor answers meanwhile
        await health_when(engine, 200, [])
        assert await victim.pid.remote() != pid, "the same process answers"
        await provider.wait_for_acks(40)
    finally:
        provider.stop()
        await sending

    for status, _, body in provider.answers:  # dropped connections, or 503: both retried
        assert status in (0, 503), body
    acked_ids = {m["event_id"] for m in provider.acked}
    await portal.wait_for(
        lambda p: acked_ids <= {e["data"]["channel_event_id"] for e in p.messages()},
        timeout_s=DEADLINE_S,
    )
    check_delivered_once_in_order(portal, provider.acked)
