"""The engine's one public HTTP app, served by every channel actor on the same port.

Routes: provider webhooks (``/hooks/...``), the portal API (``/api/v1/...``), the admin API
(``/admin/v1/...``), ``/healthz`` and ``/metrics``. Every refusal is JSON with a reason and
is counted; nothing a handler refuses was stored, so nothing stored is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import ray
from aiohttp import web
from aiohttp.typedefs import Middleware

from actors.admin_api import AdminApi
from actors.http_common import json_response
from actors.portal_api import PortalApi
from actors.view import EngineView, call
from actors.webhooks import WebhookIngest
from engine import metrics
from engine.errors import EngineError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusal(view: EngineView, status: int, reason: str, message: str) -> web.Response:
    view.counters.inc("openlines_rejected_total", reason=reason)
    return json_response({"error": reason, "message": message}, status)


def error_middleware(view: EngineView) -> Middleware:
    max_body = view.config.max_body_bytes

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_body:
            return refusal(view, 413, "body_too_large", f"body over {max_body} bytes")
        try:
            return await handler(request)
        except EngineError as exc:
            if exc.http_status >= 500:
                log.warning("%s %s: %s", request.method, request.path, exc)
            return refusal(view, exc.http_status, exc.reason, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return refusal(view, 413, "body_too_large", f"body over {max_body} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = exc.reason.lower().replace(" ", "_")
            return refusal(
                view, exc.status, reason, f"{exc.reason}: {request.method} {request.path}"
            )
        except (TimeoutError, ray.exceptions.RayError) as exc:
            # The boundary of a request: a part of the engine is restarting. Nothing was
            # acknowledged, so the caller retries.
            log.warning("%s %s: engine part unavailable: %s", request.method, request.path, exc)
            return refusal(view, 503, "unavailable", "engine part unavailable; retry")
        except Exception:  # last line of defence: log, count, answer 500
            log.exception("%s %s failed", request.method, request.path)
            return refusal(view, 500, "internal_error", "internal error; nothing was stored")

    return middleware


class HealthAndMetrics:
    def __init__(self, view: EngineView) -> None:
        self._view = view

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/metrics", self.metrics)]

    async def healthz(self, request: web.Request) -> web.Response:
        view = self._view
        version, rules_error = await asyncio.wait_for(
            call(view.registry_actor.rules_status.remote()), timeout=5
        )
        return json_response(
            {
                "status": "ok",
                "registry_version": view.registry.version,
                "rules_version": version,
                "rules_error": rules_error,
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        actors = self._view.all_actors()
        stats = await asyncio.wait_for(
            asyncio.gather(*(call(actor.stats.remote()) for actor in actors)), timeout=10
        )
        counters = metrics.merge(counter for counter, _ in stats)
        gauges = metrics.merge(gauge for _, gauge in stats)
        return web.Response(
            text=metrics.render(counters, gauges),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )


def build_app(view: EngineView, ingest: WebhookIngest) -> web.Application:
    app = web.Application(
        client_max_size=view.config.max_body_bytes, middlewares=[error_middleware(view)]
    )
    app.router.add_post("/hooks/{channel}/{connector_id}", ingest.handle)
    app.add_routes(PortalApi(view).routes())
    app.add_routes(AdminApi(view).routes())
    app.add_routes(HealthAndMetrics(view).routes())
    return app
