"""The admin API: register portals and connectors without a restart, reload rules.

Protected by a bearer token from the config (``admin_token``); without one the API is off.
A change is applied by the registry (durably, as a new registry version) and answered once
this channel actor runs with it, so the caller's next request sees the change.
"""

from __future__ import annotations

import asyncio
import hmac

import aiohttp
from aiohttp import web

from engine.api_models import ResponsibleRequest
from engine.config import ConnectorConfig, PortalConfig
from engine.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    ValidationFailedError,
)
from engine.security.sealing import x25519_public_from_b64
from engine.web.common import json_response, page_limit, parse_json_model
from engine.web.connecting import Connecting, ConnectRequest, DisconnectRequest
from engine.web.portal_api import MAX_DECISIONS_PAGE
from engine.web.ports import Engine

REDACTED = "***"
RULES_APPLY_TIMEOUT_S = 10.0


class AdminApi:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/v1/registry", self.registry),
            web.put("/admin/v1/portals/{portal_id}", self.put_portal),
            web.put("/admin/v1/connectors/{connector_id}", self.put_connector),
            web.delete("/admin/v1/connectors/{connector_id}", self.delete_connector),
            web.post("/admin/v1/connectors/{connector_id}/connect", self.connect),
            web.post("/admin/v1/connectors/{connector_id}/disconnect", self.disconnect),
            web.post("/admin/v1/rules/reload", self.reload_rules),
            web.get("/admin/v1/rules/status", self.rules_status),
            web.get("/admin/v1/portals/{portal_id}/dialogs/{dialog_id}/decisions", self.decisions),
            web.put(
                "/admin/v1/portals/{portal_id}/customers/{connector_id}/{customer_id}/responsible",
                self.responsible,
            ),
            web.post("/admin/v1/clock/advance", self.advance_clock),
        ]

    def _authorize(self, request: web.Request) -> None:
        token = self._engine.config.admin_token
        if token is None:
            raise ForbiddenError("the admin API is off: set admin_token in the config")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise AuthError("missing or wrong admin bearer token")

    async def _applied(self, version: int) -> web.Response:
        await self._engine.wait_for_version(version)
        return json_response({"registry_version": version})

    async def registry(self, request: web.Request) -> web.Response:
        self._authorize(request)
        registry = await self._engine.registrar.registry()
        return json_response(
            {
                "registry_version": registry.version,
                "portals": [
                    {**p.model_dump(mode="json"), "license_key": REDACTED}
                    for p in registry.portals.values()
                ],
                "connectors": [
                    {**c.model_dump(mode="json"), "credentials": REDACTED}
                    for c in registry.connectors.values()
                ],
            }
        )

    async def put_portal(self, request: web.Request) -> web.Response:
        self._authorize(request)
        portal = parse_json_model(PortalConfig, await request.read())
        if portal.id != request.match_info["portal_id"]:
            raise ValidationFailedError("id: must equal the portal id in the URL")
        x25519_public_from_b64(portal.public_key)
        version = await self._engine.registrar.put_portal(portal)
        self._engine.portal(portal.id)
        return await self._applied(version)

    async def put_connector(self, request: web.Request) -> web.Response:
        self._authorize(request)
        connector = parse_json_model(ConnectorConfig, await request.read())
        if connector.id != request.match_info["connector_id"]:
            raise ValidationFailedError("id: must equal the connector id in the URL")
        self._engine.channel(connector)
        version = await self._engine.registrar.put_connector(connector)
        return await self._applied(version)

    async def delete_connector(self, request: web.Request) -> web.Response:
        self._authorize(request)
        version = await self._engine.registrar.delete_connector(request.match_info["connector_id"])
        return await self._applied(version)

    async def connect(self, request: web.Request) -> web.Response:
        """The provider's set-up calls and the connector stored (engine.web.connecting)."""
        self._authorize(request)
        body = parse_json_model(ConnectRequest, await request.read())
        async with aiohttp.ClientSession() as session:
            connecting = Connecting(self._engine, session, self._base_url(request))
            done = await connecting.connect(request.match_info["connector_id"], body)
        return json_response(done)

    async def disconnect(self, request: web.Request) -> web.Response:
        self._authorize(request)
        raw = await request.read()
        body = parse_json_model(DisconnectRequest, raw) if raw else DisconnectRequest()
        async with aiohttp.ClientSession() as session:
            connecting = Connecting(self._engine, session, self._base_url(request))
            done = await connecting.disconnect(request.match_info["connector_id"], body)
        return json_response(done)

    def _base_url(self, request: web.Request) -> str:
        """Where providers reach the engine: ``public_url``, else where this call came in."""
        return self._engine.config.public_url or str(request.url.origin())

    async def reload_rules(self, request: web.Request) -> web.Response:
        self._authorize(request)
        version, error = await self._engine.registrar.reload_rules()
        if error is not None:
            raise ConfigError(f"rules not reloaded, version {version} stays in force:\n{error}")
        applied = await asyncio.gather(
            *(
                server.rules_applied(version, RULES_APPLY_TIMEOUT_S)
                for server in self._engine.portal_servers()
            )
        )
        lagging = sum(1 for taken in applied if taken < version)
        if lagging:
            raise UnavailableError(
                f"rules version {version} loaded; {lagging} portal actor(s) have not taken it "
                f"within {RULES_APPLY_TIMEOUT_S:.0f} s"
            )
        return json_response({"rules_version": version})

    async def rules_status(self, request: web.Request) -> web.Response:
        self._authorize(request)
        version, error = await self._engine.registrar.rules_status()
        return json_response({"rules_version": version, "rules_error": error})

    def _portal_id(self, request: web.Request) -> str:
        portal_id = request.match_info["portal_id"]
        self._engine.registry.portal(portal_id)  # 404 for an unknown portal
        return portal_id

    async def decisions(self, request: web.Request) -> web.Response:
        """What ``openlines rules explain`` shows: a dialog's decisions and why it waits."""
        self._authorize(request)
        portal_id = self._portal_id(request)
        limit = page_limit(request, 20, MAX_DECISIONS_PAGE)
        explained = await self._engine.portal(portal_id).explain(
            portal_id, None, request.match_info["dialog_id"], limit
        )
        return json_response(explained)

    async def responsible(self, request: web.Request) -> web.Response:
        """The CRM's responsible operator of a customer, set by the platform."""
        self._authorize(request)
        portal_id = self._portal_id(request)
        body = parse_json_model(ResponsibleRequest, await request.read())
        connector_id = request.match_info["connector_id"]
        connector = self._engine.registry.connectors.get(connector_id)
        if connector is None or connector.portal != portal_id:
            raise NotFoundError(f"portal {portal_id!r} has no connector {connector_id!r}")
        await self._engine.portal(portal_id).set_responsible(
            portal_id, None, connector_id, request.match_info["customer_id"], body.operator_id
        )
        return json_response({"responsible_id": body.operator_id})

    async def advance_clock(self, request: web.Request) -> web.Response:
        """Move the engine's manual clock (``clock: manual`` only): tests simulate hours."""
        self._authorize(request)
        if self._engine.config.clock != "manual":
            raise ForbiddenError("the engine runs on the system clock")
        try:
            seconds = float(request.query["seconds"])
        except (KeyError, ValueError):
            raise BadRequestError("query parameter seconds must be a number") from None
        for part in self._engine.parts().values():
            await part.advance_clock(seconds)
        return json_response({"advanced_s": seconds})
