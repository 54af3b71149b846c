"""The registry: which portals, lines and connectors exist, as one versioned snapshot.

The registry's host (channel actor 0, ``engine.registry_host``) holds the authoritative
registry (durably, in its SQLite file); channel and portal actors hold copies and long-poll
for newer versions. A snapshot is checked whole before it replaces the old one: a connector
must name a known portal and one of its lines.

Each admin call makes one version, one ``RegistryChange``. A follower is sent the changes
since its version (``RegistryUpdate``), and a whole copy only when it has none or is further
behind than the registry remembers: with 10,000 portals, adding one sends one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

from engine.config import ConnectorConfig, PortalConfig
from engine.errors import ConfigError, NotFoundError
from engine.placement import host_name


@dataclass(frozen=True, slots=True)
class PortalKeys:
    """What the HTTP edge needs of a portal: who it is, what signs its API calls and which
    lines it has. A channel actor holds this, not the portal's whole config (0.3 KB instead
    of 3 KB a portal, in every channel actor)."""

    id: str
    license_key: str
    lines: frozenset[str]

    def line_ids(self) -> frozenset[str]:
        return self.lines


def portal_keys(portal: PortalConfig) -> PortalKeys:
    return PortalKeys(portal.id, portal.license_key, frozenset(portal.line_ids()))


@dataclass(frozen=True)
class RegistryChange:
    """What one version changed: portals and connectors put (added or replaced), and
    connectors removed."""

    version: int
    portals: tuple[PortalConfig, ...] = ()
    connectors: tuple[ConnectorConfig, ...] = ()
    removed_connectors: tuple[str, ...] = ()

    def for_host(self, host: str, pool_size: int) -> RegistryChange:
        """The part a portal actor follows (``Registry.by_host``); a removed connector is
        named to every one (an id alone does not say whose it was)."""
        return RegistryChange(
            self.version,
            tuple(p for p in self.portals if host_name(p.id, pool_size) == host),
            tuple(c for c in self.connectors if host_name(c.portal, pool_size) == host),
            self.removed_connectors,
        )


P = TypeVar("P")
C = TypeVar("C")


def _changed_dicts(
    portals: dict[str, P],
    connectors: dict[str, C],
    put_portals: Iterable[tuple[str, P]],
    put_connectors: Iterable[tuple[str, C]],
    removed_connectors: Iterable[str],
) -> tuple[dict[str, P], dict[str, C]]:
    """New dicts with a change applied: the copies in hand stay as they were."""
    new_portals = {**portals, **dict(put_portals)}
    new_connectors = {**connectors, **dict(put_connectors)}
    for connector_id in removed_connectors:
        new_connectors.pop(connector_id, None)
    return new_portals, new_connectors


@dataclass(frozen=True)
class EdgeRegistry:
    """The channel actors' copy of the registry (``Registry.edge``): every connector, and of
    every portal its ``PortalKeys``."""

    version: int = 0
    portals: dict[str, PortalKeys] = field(default_factory=dict)
    connectors: dict[str, ConnectorConfig] = field(default_factory=dict)

    def changed(self, change: RegistryChange) -> EdgeRegistry:
        portals, connectors = _changed_dicts(
            self.portals,
            self.connectors,
            ((p.id, portal_keys(p)) for p in change.portals),
            ((c.id, c) for c in change.connectors),
            change.removed_connectors,
        )
        return EdgeRegistry(change.version, portals, connectors)

    def portal(self, portal_id: str) -> PortalKeys:
        try:
            return self.portals[portal_id]
        except KeyError:
            raise NotFoundError(f"unknown portal {portal_id!r}") from None

    def connector(self, channel: str, connector_id: str) -> ConnectorConfig:
        connector = self.connectors.get(connector_id)
        if connector is None or connector.channel != channel:
            raise NotFoundError(f"unknown {channel} connector {connector_id!r}")
        return connector


@dataclass(frozen=True)
class RegistryOutline:
    """What the driver needs of the registry: which portals to start actors for, and a few
    connectors to name at start. A platform's registry of 10,000 portals stays in the
    registry's host instead of a second copy living in the driver for the whole run."""

    portal_ids: tuple[str, ...]
    connectors: tuple[ConnectorConfig, ...]
    """The first connectors by id, at most the number asked for."""
    connector_count: int


@dataclass(frozen=True)
class Registry:
    version: int = 0
    portals: dict[str, PortalConfig] = field(default_factory=dict)
    connectors: dict[str, ConnectorConfig] = field(default_factory=dict)

    def edge(self) -> EdgeRegistry:
        portals = {p.id: portal_keys(p) for p in self.portals.values()}
        return EdgeRegistry(self.version, portals, self.connectors)

    def changed(self, change: RegistryChange) -> Registry:
        """This registry with ``change`` applied, unchecked (a follower's copy: the registry
        actor checked it, ``checked``)."""
        portals, connectors = _changed_dicts(
            self.portals,
            self.connectors,
            ((p.id, p) for p in change.portals),
            ((c.id, c) for c in change.connectors),
            change.removed_connectors,
        )
        return Registry(change.version, portals, connectors)

    def outline(self, connectors_shown: int) -> RegistryOutline:
        shown = tuple(self.connectors[key] for key in sorted(self.connectors)[:connectors_shown])
        return RegistryOutline(tuple(self.portals), shown, len(self.connectors))

    def by_host(self, pool_size: int) -> dict[str, Registry]:
        """Each portal actor's part: its portals and their connectors, at this version.

        A portal actor follows only its part, so none of them holds (or unpickles, at
        every change) the portals of the others: with 10,000 portals over a pool that was
        most of a portal actor's memory per portal.
        """
        portals: dict[str, dict[str, PortalConfig]] = {}
        for portal in self.portals.values():
            portals.setdefault(host_name(portal.id, pool_size), {})[portal.id] = portal
        connectors: dict[str, dict[str, ConnectorConfig]] = {host: {} for host in portals}
        for connector in self.connectors.values():
            host = host_name(connector.portal, pool_size)
            connectors.setdefault(host, {})[connector.id] = connector
        return {
            host: Registry(self.version, portals.get(host, {}), connectors[host])
            for host in connectors
        }

    def put_portal(self, portal: PortalConfig) -> RegistryChange:
        """The next version's change that puts ``portal`` (``checked`` applies it)."""
        return RegistryChange(self.version + 1, portals=(portal,))

    def put_connector(self, connector: ConnectorConfig) -> RegistryChange:
        return RegistryChange(self.version + 1, connectors=(connector,))

    def remove_connector(self, connector_id: str) -> RegistryChange:
        if connector_id not in self.connectors:
            raise NotFoundError(f"unknown connector {connector_id!r}")
        return RegistryChange(self.version + 1, removed_connectors=(connector_id,))

    def checked(self, change: RegistryChange) -> Registry:
        """This registry with ``change`` applied, once every connector still names a known
        portal and one of its lines (``ConfigError`` otherwise): the registry's own way."""
        changed = self.changed(change)
        check_references(changed.portals, changed.connectors)
        return changed


class Follows(Protocol):
    """A follower's copy: ``Registry`` (portal actors) or ``EdgeRegistry`` (channel actors)."""

    @property
    def version(self) -> int: ...

    def changed(self, change: RegistryChange) -> Self: ...


Copy = TypeVar("Copy", bound=Follows)


@dataclass(frozen=True)
class RegistryUpdate(Generic[Copy]):
    """What a follower needs to reach ``version``: the changes after its own version, or a
    whole copy (``whole``) when it has none or is further behind than the changes kept."""

    version: int
    changes: tuple[RegistryChange, ...] = ()
    whole: Copy | None = None

    def applied_to(self, copy: Copy) -> Copy:
        """The follower's copy at ``version`` (the one in hand when it is not older)."""
        if self.whole is not None:
            return self.whole if self.whole.version > copy.version else copy
        for change in self.changes:
            if change.version > copy.version:
                copy = copy.changed(change)
        return copy


def check_references(
    portals: dict[str, PortalConfig], connectors: dict[str, ConnectorConfig]
) -> None:
    """Every connector names a known portal and one of that portal's lines."""
    for connector in connectors.values():
        portal = portals.get(connector.portal)
        if portal is None:
            raise ConfigError(f"connector {connector.id!r}: unknown portal {connector.portal!r}")
        if connector.line not in portal.line_ids():
            raise ConfigError(
                f"connector {connector.id!r}: portal {portal.id!r} has no line {connector.line!r}"
            )
