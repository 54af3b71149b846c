"""Connecting a channel in one step, and disconnecting it (docs/channels/contract.md,
"Connecting"): the provider's set-up calls and the connector's registration, in the order
that leaves nothing half done.

Connect: the channel checks what the user gave with the provider and makes the credentials
(``prepare_connect``: the token works, secrets generated); the connector is stored, so its
webhook answers (Viber and VK check the URL the moment it is set); then the provider is
pointed at it (``subscribe``), and what the provider gave back (VK's server id) is stored
with the credentials. When subscribing fails the connector is removed again. Disconnect:
the provider stops posting (``unsubscribe``), then the connector is removed; ``force``
removes it even when the provider refuses (a token revoked meanwhile).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from channels.base import Channel
from channels.registry import channel_class
from engine.config import ID_PATTERN, ConnectorConfig
from engine.errors import ConfigError, ConflictError, NotFoundError, ProviderSetupError
from engine.web.common import parse_model
from engine.web.ports import Engine


class ConnectRequest(BaseModel):
    """The admin API's ``POST /admin/v1/connectors/{connector_id}/connect`` body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str = Field(description="The channel's name: telegram, vk, viber, ...")
    portal: str = Field(pattern=ID_PATTERN, description="The portal it belongs to.")
    line: str = Field(pattern=ID_PATTERN, description="The portal's open line for its dialogs.")
    settings: dict[str, Any] = Field(description="The channel's connect_model: its token, ...")


class DisconnectRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    force: bool = Field(
        default=False, description="Remove the connector even when the provider refuses."
    )


def webhook_url(base_url: str, channel: type[Channel], connector_id: str) -> str:
    """Where the provider posts: the channel's app-level route, else the connector's."""
    base = base_url.rstrip("/")
    if channel.app_webhook:
        return f"{base}/hooks/{channel.name}"
    return f"{base}/hooks/{channel.name}/{connector_id}"


class Connecting:
    """Connect and disconnect through one channel actor's view of the engine."""

    def __init__(self, engine: Engine, session: aiohttp.ClientSession, base_url: str) -> None:
        self._engine = engine
        self._session = session
        self._base_url = base_url

    async def connect(self, connector_id: str, request: ConnectRequest) -> dict[str, object]:
        """Set the provider up and store the connector; returns what was connected."""
        cls = channel_class(request.channel)
        if cls.connect_model is None:
            raise NotFoundError(f"{cls.name} cannot be connected in one step; PUT the connector")
        if connector_id in self._engine.registry.connectors:
            raise ConflictError(f"connector {connector_id!r} exists; disconnect it first")
        self._check_line(request.portal, request.line)
        given = parse_model(cls.connect_model, request.settings)
        credentials = await cls.prepare_connect(self._session, given)
        connector = ConnectorConfig(
            id=connector_id,
            channel=cls.name,
            portal=request.portal,
            line=request.line,
            credentials=credentials,
        )
        channel = self._engine.channel(connector)  # the credentials validate, or 422
        await self._put(connector)
        url = webhook_url(self._base_url, cls, connector_id)
        try:
            added = await channel.subscribe(self._session, url)
        except BaseException:
            await self._remove(connector_id)
            raise
        if added:
            connector = connector.model_copy(update={"credentials": {**credentials, **added}})
            await self._put(connector)
        return {"connector_id": connector_id, "channel": cls.name, "webhook_url": url}

    async def disconnect(self, connector_id: str, request: DisconnectRequest) -> dict[str, object]:
        connector = self._engine.registry.connectors.get(connector_id)
        if connector is None:
            raise NotFoundError(f"unknown connector {connector_id!r}")
        channel = self._engine.channel(connector)
        url = webhook_url(self._base_url, type(channel), connector_id)
        unsubscribed = True
        try:
            await channel.unsubscribe(self._session, url)
        except (ProviderSetupError, NotFoundError):
            if not request.force:
                raise
            unsubscribed = False
        version = await self._remove(connector_id)
        return {
            "connector_id": connector_id,
            "unsubscribed": unsubscribed,
            "registry_version": version,
        }

    def _check_line(self, portal_id: str, line_id: str) -> None:
        """Refused before any provider call: a connector must name a known portal and line."""
        portal = self._engine.registry.portal(portal_id)
        if line_id not in portal.line_ids():
            raise ConfigError(f"portal {portal_id!r} has no line {line_id!r}")

    async def _put(self, connector: ConnectorConfig) -> int:
        version = await self._engine.registrar.put_connector(connector)
        await self._engine.wait_for_version(version)
        return version

    async def _remove(self, connector_id: str) -> int:
        version = await self._engine.registrar.delete_connector(connector_id)
        await self._engine.wait_for_version(version)
        return version
