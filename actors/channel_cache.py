"""Channel plug-ins per connector, for every actor that receives or sends through them."""

from __future__ import annotations

from pathlib import Path

from channels.base import Channel
from channels.registry import build_channel
from engine.config import ConnectorConfig
from engine.models import Route


def route_of(connector: ConnectorConfig) -> Route:
    return Route(
        portal_id=connector.portal,
        line_id=connector.line,
        connector_id=connector.id,
        channel=connector.channel,
    )


def channel_for(connector: ConnectorConfig, data_dir: Path | None = None) -> Channel:
    """The connector's channel plug-in; ``ConfigError`` when its credentials do not validate."""
    return build_channel(route_of(connector), connector.credentials, data_dir)


class ChannelCache:
    """One channel object per connector, rebuilt when the connector's config changes."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir
        self._built: dict[str, tuple[ConnectorConfig, Channel]] = {}

    def get(self, connector: ConnectorConfig) -> Channel:
        cached = self._built.get(connector.id)
        # A registry snapshot hands out the same object until the entry changes, so identity
        # answers the per-request case without comparing every field.
        if cached is None or (cached[0] is not connector and cached[0] != connector):
            cached = (connector, channel_for(connector, self._data_dir))
            self._built[connector.id] = cached
        return cached[1]
