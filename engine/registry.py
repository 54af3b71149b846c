"""The registry: which portals, lines and connectors exist, as one versioned snapshot.

The registry actor holds the authoritative registry (durably, in its SQLite file); channel and
portal actors hold copies and long-poll for newer versions. A snapshot is checked whole
before it replaces the old one: a connector must name a known portal and one of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class EdgeRegistry:
    """The channel actors' copy of the registry (``Registry.edge``): every connector, and of
    every portal its ``PortalKeys``."""

    version: int = 0
    portals: dict[str, PortalKeys] = field(default_factory=dict)
    connectors: dict[str, ConnectorConfig] = field(default_factory=dict)

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
    registry actor instead of a second copy living in the driver for the whole run."""

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
        portals = {
            p.id: PortalKeys(p.id, p.license_key, frozenset(p.line_ids()))
            for p in self.portals.values()
        }
        return EdgeRegistry(self.version, portals, self.connectors)

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

    def with_portal(self, portal: PortalConfig) -> Registry:
        portals = dict(self.portals)
        portals[portal.id] = portal
        return self._checked(portals, self.connectors)

    def with_connector(self, connector: ConnectorConfig) -> Registry:
        connectors = dict(self.connectors)
        connectors[connector.id] = connector
        return self._checked(self.portals, connectors)

    def without_connector(self, connector_id: str) -> Registry:
        if connector_id not in self.connectors:
            raise NotFoundError(f"unknown connector {connector_id!r}")
        connectors = {k: v for k, v in self.connectors.items() if k != connector_id}
        return self._checked(self.portals, connectors)

    def _checked(
        self, portals: dict[str, PortalConfig], connectors: dict[str, ConnectorConfig]
    ) -> Registry:
        check_references(portals, connectors)
        return Registry(self.version + 1, portals, connectors)


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
