"""One node's widget log as the other nodes reach it, on a cluster of several Ray nodes
(docs/channels/widget.md, "Across machines").

Each node keeps its widget log in its own data folder. On a cluster the supervisor starts
one ``WidgetLogActor`` per node, pinned to it and named after the node's home (the head
node, where the engine was started, is the home ``""`` of one machine, so a single-machine
engine starts none and changes nothing). Channel and portal actors ``join`` at their start:
their own node's log is the file itself, another node's is its log actor, whose every call
commits before it answers (``remote_log``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.faults import RESTARTS
from actors.remote import Remote
from actors.settings import ActorSettings
from channels.widget.log import (
    Appended,
    Forgotten,
    LogEntry,
    NewEntry,
    StoredFile,
    Visitor,
    log_path,
    shared_log,
)
from channels.widget.logs import LocalLog, LogPort, join_cluster
from channels.widget.retention import PruneElsewhere, RetainedWidget, WidgetPruner
from engine.errors import NotFoundError
from engine.logs import configure_logging
from engine.metrics import Counters

log = logging.getLogger(__name__)

HOME_CHARS = 16
"""A node's home: the first characters of its Ray node id (hex)."""


def home_of_node(node_id: str, head_node_id: str) -> str:
    """The head node's home is ``""`` (one machine's); another node's, its id's start."""
    return "" if node_id == head_node_id else node_id[:HOME_CHARS].lower()


def widget_log_name(home: str) -> str:
    return f"widget-log-{home or 'head'}"


@ray.remote(num_cpus=0)
class WidgetLogActor:
    """This node's log for the other nodes' actors: each method is ``LocalLog``'s."""

    def __init__(self, settings: ActorSettings) -> None:
        configure_logging()
        clock = settings.make_clock()
        self._log = LocalLog(shared_log(log_path(settings.data_dir), clock))
        # Counted by the portal actor that asks (``prune``'s answer), not here.
        self._pruner = WidgetPruner(log_path(settings.data_dir), clock, Counters())

    async def prune(self, widgets: list[RetainedWidget]) -> Forgotten:
        """A portal actor's retention pass over this node's visitors of its widgets."""
        return await self._pruner.prune(widgets)

    async def pid(self) -> int:
        return os.getpid()

    async def append(self, entries: list[NewEntry]) -> list[Appended]:
        return await self._log.append(entries)

    async def visitor(self, hashed: bytes) -> Visitor | None:
        return await self._log.visitor(hashed)

    async def add_visitor(
        self, hashed: bytes, connector_id: str, visitor_id: str, now: float
    ) -> None:
        await self._log.add_visitor(hashed, connector_id, visitor_id, now)

    async def set_details(
        self, visitor_id: str, name: str | None, phone: str | None, email: str | None
    ) -> None:
        await self._log.set_details(visitor_id, name, phone, email)

    async def entries_of(
        self, visitor_id: str, after_seq: int, limit: int, now: float
    ) -> list[LogEntry]:
        return await self._log.entries_of(visitor_id, after_seq, limit, now)

    async def since(self, after_seq: int, limit: int) -> list[LogEntry]:
        return await self._log.since(after_seq, limit)

    async def head(self) -> int:
        return await self._log.head()

    async def put_file(self, file_id: str, stored: StoredFile, now: float) -> None:
        await self._log.put_file(file_id, stored, now)

    async def file(self, file_id: str) -> StoredFile | None:
        return await self._log.file(file_id)


def remote_log(handle: Any) -> LogPort:
    """Another node's log through its actor: ``Remote`` calls the actor's methods, which
    are ``LogPort``'s, and turns Ray's failures into the engine's errors (a log actor
    restarting is a 503: the widget tries again)."""
    return cast(LogPort, Remote(handle))


def start_widget_logs(settings: ActorSettings) -> tuple[ActorSettings, list[Any]]:
    """On a cluster of several nodes, one log actor per node, and the settings that say
    which node is the head; on one node, none and the settings as they were."""
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]  # type: ignore[no-untyped-call]
    if len(nodes) < 2:
        return settings, []
    head = ray.get_runtime_context().get_node_id()
    actors = [
        WidgetLogActor.options(  # type: ignore[attr-defined]
            name=widget_log_name(home_of_node(node, head)),
            namespace=settings.namespace,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
            **RESTARTS,
        ).remote(settings)
        for node in nodes
    ]
    log.info("widget logs on %d nodes", len(actors))
    homes = tuple(home_of_node(node, head) for node in nodes)
    return replace(settings, head_node_id=head, widget_homes=homes), actors


def spread_over_nodes(settings: ActorSettings, index: int) -> dict[str, Any]:
    """On a cluster of several nodes, channel actor ``index``'s place: the nodes in turn
    (each node then takes visitors on the public port); on one node, Ray's default."""
    if not settings.widget_homes:
        return {}
    nodes = sorted(
        node["NodeID"]
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node.get("Alive")
    )
    node = nodes[index % len(nodes)]
    # Not soft: a soft affinity left both of two channel actors on one node (Ray 2.60,
    # actors of no CPU). An actor serves its node's port; with the node, it is gone.
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}


def join(settings: ActorSettings) -> list[PruneElsewhere]:
    """This process's node's home and the way to the other nodes' logs (nothing on one
    machine). Called by channel and portal actors before they open a widget log; returns
    how the portal actor's retention reaches the other nodes' logs."""
    if not settings.head_node_id:
        return []
    node = ray.get_runtime_context().get_node_id()
    ports: dict[str, LogPort] = {}

    def remote(home: str) -> LogPort:
        port = ports.get(home)
        if port is None:
            try:
                handle = ray.get_actor(widget_log_name(home), namespace=settings.namespace)
            except ValueError:
                raise NotFoundError(f"no widget log {home!r} in this engine") from None
            port = ports[home] = remote_log(handle)
        return port

    home = home_of_node(node, settings.head_node_id)
    join_cluster(settings.data_dir, home, remote)

    def pruning_at(other: str) -> PruneElsewhere:
        async def prune(widgets: Sequence[RetainedWidget]) -> Forgotten:
            handle = ray.get_actor(widget_log_name(other), namespace=settings.namespace)
            forgotten: Forgotten = await Remote(handle).prune(list(widgets))
            return forgotten

        return prune

    return [pruning_at(other) for other in settings.widget_homes if other != home]
