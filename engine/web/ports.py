"""What the HTTP handlers need of the rest of the engine, and nothing more.

In the running engine each is implemented by actors (``actors.view.EngineView``, with calls
to other processes); in tests without Ray, by the same engine parts in one process. Errors
arrive as the engine's own (``engine.errors``): a part that is down is an
``UnavailableError``, whatever carries the call.
"""

from __future__ import annotations

from typing import Any, Protocol

from channels.base import Channel
from engine.api_models import PortalCall, ReplyBody
from engine.clock import Clock
from engine.config import ConnectorConfig, EngineConfig, PortalConfig
from engine.crm.calls import CrmCall
from engine.metrics import Counters, Sample
from engine.rate_ledger import Consumed
from engine.registry import EdgeRegistry, Registry
from engine.routing.state import OperatorStatus
from engine.store.records import DeadLetter, OutboxRecord

Stats = tuple[dict[Sample, float], dict[Sample, float]]
"""Counters and gauges, as every part reports them for ``/metrics``."""


class PortalCalls(Protocol):
    """The portal API's calls on whoever serves a portal (its portal actor). ``request_id``
    is the signed request's id, refused if seen before; None for admin calls."""

    async def reply(
        self, portal_id: str, request_id: str, dialog_id: str, body: ReplyBody
    ) -> str: ...

    async def operate(
        self, portal_id: str, request_id: str, call: PortalCall
    ) -> tuple[int, bytes]: ...

    async def dialog(self, portal_id: str, request_id: str, dialog_id: str) -> dict[str, Any]: ...

    async def dialog_action(
        self, portal_id: str, request_id: str, dialog_id: str, action: str, operator_id: str
    ) -> dict[str, Any]: ...

    async def set_operator(
        self,
        portal_id: str,
        request_id: str,
        operator_id: str,
        status: OperatorStatus | None,
        working: bool | None,
    ) -> dict[str, Any]: ...

    async def line_operators(
        self, portal_id: str, request_id: str, line_id: str
    ) -> list[dict[str, object]]: ...

    async def explain(
        self, portal_id: str, request_id: str | None, dialog_id: str, limit: int
    ) -> dict[str, object]: ...

    async def set_responsible(
        self,
        portal_id: str,
        request_id: str | None,
        connector_id: str,
        customer_id: str,
        operator_id: str | None,
    ) -> None: ...

    async def crm(self, portal_id: str, request_id: str, call: CrmCall) -> bytes: ...

    async def dead_letters(
        self, portal_id: str, request_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]: ...


class PortalServer(PortalCalls, Protocol):
    """A server of portals as the channel side sees it: the API's calls, records handed
    over after their acknowledgement (``engine.handoff``), and the rules it routes with."""

    async def append(
        self, records: list[OutboxRecord], source: int, watermark: float
    ) -> list[bool]: ...

    async def rules_applied(self, version: int, timeout_s: float) -> int:
        """The rules version it routes with, once it is ``version`` or after ``timeout_s``."""
        ...


class Registrar(Protocol):
    """Changes to the registry and the rules (``engine.registry_host``)."""

    async def put_portal(self, portal: PortalConfig) -> int: ...

    async def put_connector(self, connector: ConnectorConfig) -> int: ...

    async def delete_connector(self, connector_id: str) -> int: ...

    async def reload_rules(self) -> tuple[int, str | None]: ...

    async def rules_status(self) -> tuple[int, str | None]: ...

    async def registry(self) -> Registry:
        """The whole registry, every portal's config (``GET /admin/v1/registry``)."""
        ...


class Part(Protocol):
    """Any part ``/healthz`` and ``/metrics`` ask, and the manual clock moves."""

    async def ping(self) -> object: ...

    async def stats(self) -> Stats: ...

    async def advance_clock(self, seconds: float) -> None: ...


class Engine(Protocol):
    """The engine as one channel actor's HTTP handlers see it."""

    @property
    def config(self) -> EngineConfig: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def registry(self) -> EdgeRegistry:
        """This process's copy of the registry, followed as it changes: every connector,
        and of each portal what the edge checks (``engine.registry.PortalKeys``)."""
        ...

    @property
    def registrar(self) -> Registrar: ...

    @property
    def engine_key(self) -> dict[str, str]:
        """The body of ``GET /api/v1/engine-key``."""
        ...

    @property
    def media_link_key(self) -> bytes:
        """The key media links are MAC'd with (``engine.security.media_links``)."""
        ...

    async def wait_for_version(self, version: int) -> None:
        """Once this process's copy of the registry is at least ``version``."""
        ...

    def channel(self, connector: ConnectorConfig) -> Channel:
        """The connector's channel plug-in."""
        ...

    def portal(self, portal_id: str) -> PortalServer:
        """Whoever serves ``portal_id`` (started if it is new)."""
        ...

    def portal_servers(self) -> list[PortalServer]:
        """Every server of the registry's portals, each once."""
        ...

    def parts(self) -> dict[str, Part]:
        """Every part of the engine by name: what ``/healthz`` and ``/metrics`` report."""
        ...

    async def share_usage(self, consumed: dict[str, Consumed]) -> dict[str, float]:
        """Report what this process admitted of rate limits since its last report; the
        engine-wide buckets' levels come back (``engine.rate_ledger``)."""
        ...
