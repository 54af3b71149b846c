"""The engine's one public HTTP app, served by every channel actor on the same port.

Routes: provider webhooks (``/hooks/...``), the site's chat widget (``/widget/...``,
docs/channels/widget.md), the portal API (``/api/v1/...``), the admin API
(``/admin/v1/...``), customers' media by signed link (``/media/...``,
docs/channels/media.md), ``/healthz`` and ``/metrics``. Every refusal is JSON with a reason and
is counted (``engine.web.middleware``).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from channels.widget.logs import WidgetLogs
from channels.widget.web import WidgetApi
from engine.web.admin_api import AdminApi
from engine.web.crm_api import CrmApi
from engine.web.health import HealthAndMetrics
from engine.web.media import MediaApi
from engine.web.middleware import error_middleware
from engine.web.openapi import openapi_document
from engine.web.portal_api import PortalApi
from engine.web.ports import Engine
from engine.web.webhooks import WebhookIngest

OPENAPI_PATH = "/api/v1/openapi.json"
"""The portal API's OpenAPI description (``engine.web.openapi``), public like the key."""


def build_app(
    engine: Engine, ingest: WebhookIngest, widget_logs: WidgetLogs | None = None
) -> web.Application:
    """``widget_logs``: this node's widget log and the others' (default: the process's,
    ``channels.widget.logs.process_logs``)."""
    max_body = engine.config.max_body_bytes
    app = web.Application(
        client_max_size=max_body, middlewares=[error_middleware(engine.counters, max_body)]
    )
    app.router.add_post("/hooks/{channel}/{connector_id}", ingest.handle)
    app.router.add_get("/hooks/{channel}/{connector_id}", ingest.handshake, allow_head=False)
    app.router.add_post("/hooks/{channel}", ingest.handle_app)
    app.router.add_get("/hooks/{channel}", ingest.app_handshake, allow_head=False)
    media = MediaApi(engine, ingest.session)
    calls = [*PortalApi(engine).calls(), *CrmApi(engine).calls(), *media.calls()]
    described = orjson.dumps(openapi_document(calls))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=described, content_type="application/json")

    app.router.add_get(OPENAPI_PATH, openapi)
    app.add_routes([call.route() for call in calls])
    app.add_routes(AdminApi(engine).routes())
    app.add_routes(HealthAndMetrics(engine).routes())
    WidgetApi(engine, ingest, widget_logs).attach(app)
    media.attach(app)
    return app
