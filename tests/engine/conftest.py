"""Fixtures for the engine's logic: real SQLite files, real aiohttp servers on 127.0.0.1, a
manual clock. Nothing here starts Ray (STYLE.md §2): the logic is driven directly.

``kit`` wires a ``MailboxHost`` the way the portal actor does, with real parts only: a
``SqliteOutbox`` file in ``tmp_path`` (outbox and dialogs), ``HttpTransport`` on a real
``ClientSession``, routing rules loaded from YAML files, ``EngineSealer`` with a fresh
Ed25519 key, and channels built by ``channels.registry``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.base import Channel
from channels.registry import build_channel
from engine.clock import ManualClock
from engine.config import PortalConfig
from engine.delivery.host import MailboxHost
from engine.delivery.replies import ReplyChannel
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import NotFoundError
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.metrics import Counters
from engine.models import Customer, InboundMessage, Route, TextContent
from engine.routing.rules import RuleSet, load_rules
from engine.routing.state import DialogState
from engine.security.keys import ed25519_public_to_b64
from engine.store.records import OutboxRecord, dialog_ref
from engine.store.sqlite_outbox import SqliteOutbox
from tests.standins.meta_api import MetaGraphStandIn
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn
from tests.standins.viber_api import ViberApiStandIn
from tests.standins.vk_api import VkApiStandIn

LINE_ID = "support"
TG_CONNECTOR = "tg-1"
VK_CONNECTOR = "vk-1"
OPERATORS = ("op-a", "op-b", "op-c")

RULES = {
    "p1-support.yaml": f"portal: p1\nline: {LINE_ID}\nqueue:\n  members:\n"
    + "".join(f"    - operator: {operator}\n" for operator in OPERATORS),
    "p2-support.yaml": f"portal: p2\nline: {LINE_ID}\nqueue:\n  members:\n    - operator: op-z\n",
}


@pytest.fixture(autouse=True)
def _refuse_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine logic tests never start Ray; if another test imported it, ``init`` is refused."""
    ray = sys.modules.get("ray")
    if ray is not None:

        def refuse(*args: object, **kwargs: object) -> None:
            raise RuntimeError("tests/engine must not start Ray")

        monkeypatch.setattr(ray, "init", refuse)


# -- waiting without sleeping -------------------------------------------------------------


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds; fail after a deadline. Never a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.001)


# -- inbound records ----------------------------------------------------------------------


def inbound_message(
    portal_id: str,
    dialog_key: str,
    order_key: int,
    *,
    received_at: float,
    text: str | None = None,
    connector_id: str = TG_CONNECTOR,
    channel: str = "telegram",
    delivery: str = "guaranteed",
    event_no: str | None = None,
) -> InboundMessage:
    """A customer's text message as a channel would normalize it."""
    channel_event_id = event_no or f"{dialog_key}-{order_key}"
    return InboundMessage(
        id=inbound_event_id(connector_id, channel_event_id),
        route=Route(
            portal_id=portal_id, line_id=LINE_ID, connector_id=connector_id, channel=channel
        ),
        dialog_key=dialog_key,
        customer=Customer(channel_user_id=dialog_key, name=f"customer {dialog_key}"),
        content=TextContent(text=text or f"{dialog_key} says {order_key}"),
        channel_message_id=str(order_key),
        channel_event_id=channel_event_id,
        order_key=order_key,
        sent_at=received_at,
        received_at=received_at,
        delivery=delivery,  # type: ignore[arg-type]
    )


def inbound_record(
    portal_id: str, dialog_key: str, order_key: int, *, received_at: float, **kwargs: Any
) -> OutboxRecord:
    return outbox_record(
        inbound_message(portal_id, dialog_key, order_key, received_at=received_at, **kwargs)
    )


# -- the parts a MailboxHost is wired with ------------------------------------------------


class ChannelBook:
    """Connector id to a real channel built by the registry; unknown ids are NotFoundError."""

    def __init__(self) -> None:
        self._channels: dict[str, ReplyChannel] = {}

    def add(self, route: Route, credentials: dict[str, object]) -> Channel:
        channel = build_channel(route, credentials)
        self._channels[route.connector_id] = channel
        return channel

    def put(self, connector_id: str, channel: ReplyChannel) -> None:
        """A stand-in plug-in at the edge, on the real ``ReplyChannel`` interface."""
        self._channels[connector_id] = channel

    def __call__(self, connector_id: str) -> ReplyChannel:
        try:
            return self._channels[connector_id]
        except KeyError:
            raise NotFoundError(f"unknown connector {connector_id!r}") from None


@dataclass
class HostKit:
    tmp_path: Path
    clock: ManualClock
    session: aiohttp.ClientSession
    rules: RuleSet
    engine_key: Ed25519PrivateKey
    channels: ChannelBook = field(default_factory=ChannelBook)
    hosts: list[MailboxHost] = field(default_factory=list)
    standins: list[PortalStandIn] = field(default_factory=list)
    readers: list[SqliteOutbox] = field(default_factory=list)

    @property
    def store_path(self) -> Path:
        return self.tmp_path / "outbox.sqlite3"

    async def portal(self, portal_id: str = "p1") -> PortalStandIn:
        """A started portal stand-in that trusts this kit's engine key."""
        standin = PortalStandIn.create(portal_id)
        standin.engine_public_key_b64 = ed25519_public_to_b64(self.engine_key.public_key())
        await standin.start()
        self.standins.append(standin)
        return standin

    def config(self, standin: PortalStandIn, **overrides: Any) -> PortalConfig:
        return PortalConfig.model_validate(standin.portal_config(**overrides))

    async def host(
        self, *portals: PortalConfig, counters: Counters | None = None, **options: Any
    ) -> MailboxHost:
        """A MailboxHost on the kit's outbox file serving ``portals`` (``options``: more of
        its keyword arguments, e.g. ``max_in_flight``)."""
        host = MailboxHost(
            self.store_path,
            self.clock,
            HttpTransport(self.session, self.clock),
            EngineSealer(self.engine_key),
            self.channels,
            self.session,
            counters=counters,
            rng=random.Random(7),
            **options,
        )
        self.hosts.append(host)
        await host.set_rules(self.rules)
        await host.configure(portals)
        return host

    async def close_host(self, host: MailboxHost) -> None:
        self.hosts.remove(host)
        await host.close()

    def reader(self) -> SqliteOutbox:
        """A second connection on the outbox file, to look at what is stored (WAL allows it)."""
        reader = SqliteOutbox(self.store_path)
        self.readers.append(reader)
        return reader

    def add_telegram(self, api: TelegramApiStandIn, portal_id: str = "p1") -> Route:
        route = Route(
            portal_id=portal_id, line_id=LINE_ID, connector_id=TG_CONNECTOR, channel="telegram"
        )
        self.channels.add(
            route,
            {"bot_token": api.token, "secret_token": "hook-secret", "api_base_url": api.base_url},
        )
        return route

    def add_vk(self, api: VkApiStandIn, portal_id: str = "p1") -> Route:
        route = Route(portal_id=portal_id, line_id=LINE_ID, connector_id=VK_CONNECTOR, channel="vk")
        self.channels.add(
            route,
            {
                "access_token": api.access_token,
                "secret": "vk-secret",
                "confirmation_code": "c0nf1rm",
                "group_id": 193668024,
                "api_base_url": api.base_url,
            },
        )
        return route

    async def dialog(
        self,
        host: MailboxHost,
        portal_id: str = "p1",
        dialog_key: str = "42",
        route: Route | None = None,
    ) -> DialogState:
        """The open dialog of a chat (Telegram unless ``route`` says otherwise); the
        customer writes first if there is none."""
        connector_id = route.connector_id if route else TG_CONNECTOR
        board = (await host.router(portal_id)).dispatcher.board
        ref = dialog_ref(connector_id, dialog_key)
        if ref not in board.open_by_ref:
            order_key = int(self.clock.now() * 1000)
            via = {"connector_id": connector_id, "channel": route.channel} if route else {}
            await host.append([self.record(dialog_key, order_key, portal_id, **via)])
            await eventually(lambda: ref in board.open_by_ref, what=f"dialog of {dialog_key}")
        return board.dialogs[board.open_by_ref[ref]]

    def record(
        self, dialog_key: str, order_key: int, portal_id: str = "p1", **kwargs: Any
    ) -> OutboxRecord:
        return inbound_record(
            portal_id, dialog_key, order_key, received_at=self.clock.now(), **kwargs
        )

    async def advance_when_waiting(self, seconds: float, sleepers: int = 1) -> None:
        """Advance the clock once ``sleepers`` coroutines wait on it (none is skipped)."""
        await eventually(lambda: self.clock.sleepers >= sleepers, what=f"{sleepers} clock sleepers")
        await self.clock.advance(seconds)

    async def pump(
        self, predicate: Callable[[], bool], step_s: float, timeout_s: float = 10.0
    ) -> None:
        """Advance the clock by ``step_s`` whenever something waits on it, until ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"not reached within {timeout_s} s while pumping the clock")
            if self.clock.sleepers:
                await self.clock.advance(step_s)
            else:
                await asyncio.sleep(0.001)


def write_rules(rules_dir: Path, files: dict[str, str]) -> None:
    rules_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (rules_dir / name).write_text(text, encoding="utf-8")


@pytest.fixture
def clock() -> ManualClock:
    # The portal stand-in checks signature timestamps against real time: start there.
    return ManualClock(start_s=float(int(time.time())))


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "routing_rules"
    write_rules(directory, RULES)
    return directory


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def kit(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, rules_dir: Path
) -> AsyncIterator[HostKit]:
    kit = HostKit(
        tmp_path=tmp_path,
        clock=clock,
        session=session,
        rules=load_rules(rules_dir, 1),
        engine_key=Ed25519PrivateKey.generate(),
    )
    try:
        yield kit
    finally:
        for host in list(kit.hosts):
            await host.close()
        for standin in kit.standins:
            await standin.stop()
        for reader in kit.readers:
            reader.close()


@pytest.fixture
async def portal(kit: HostKit) -> PortalStandIn:
    return await kit.portal("p1")


@pytest.fixture
async def mailbox_host(kit: HostKit, portal: PortalStandIn) -> MailboxHost:
    """A host serving portal ``p1`` (the ``portal`` stand-in) with its default config."""
    return await kit.host(kit.config(portal))


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api


@pytest.fixture
async def vk_api() -> AsyncIterator[VkApiStandIn]:
    async with VkApiStandIn() as api:
        yield api


@pytest.fixture
async def viber_api() -> AsyncIterator[ViberApiStandIn]:
    async with ViberApiStandIn() as api:
        yield api


from tests.engine.web_kit import served  # noqa: E402,F401  (the app in one process)
from tests.engine.widget.widget_kit import widget_served  # noqa: E402,F401  (with a widget)


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraphStandIn]:
    """Meta's Graph API stand-in (docs/channels/facebook.md)."""
    async with MetaGraphStandIn() as api:
        yield api
