"""The engine's one public HTTP app, served by every channel actor on the same port.

Routes: provider webhooks (``/hooks/...``), the portal API (``/api/v1/...``), the admin API
(``/admin/v1/...``), ``/healthz`` and ``/metrics``. Every refusal is JSON with a reason and
is counted; nothing a handler refuses was stored, so nothing stored is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from aiohttp import web
from aiohttp.typedefs import Middleware

from actors import faults
from actors.admin_api import AdminApi
from actors.http_common import json_response
from actors.names import REGISTRY
from actors.portal_api import PortalApi
from actors.view import EngineView, call
from actors.webhooks import WebhookIngest
from engine import metrics
from engine.errors import EngineError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


HEALTH_TIMEOUT_S = 2.0
"""How long ``/healthz`` waits for each actor; all are asked at once."""
METRICS_TIMEOUT_S = 5.0
"""How long ``/metrics`` waits for each actor's numbers; all are asked at once."""


def refusal(
    view: EngineView,
    status: int,
    reason: str,
    message: str,
    details: dict[str, object] | None = None,
) -> web.Response:
    view.counters.inc("openlines_rejected_total", reason=reason)
    response = json_response({"error": reason, "message": message, **(details or {})}, status)
    if status == 503:
        response.headers["Retry-After"] = str(faults.RETRY_AFTER_S)
    return response


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
            return refusal(view, exc.http_status, exc.reason, str(exc), exc.details())
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
            if not faults.unavailable(exc):  # an actor's own bug: retrying repeats it
                log.error("%s %s failed in an actor: %s", request.method, request.path, exc)
                return refusal(view, 500, "internal_error", "internal error; nothing was stored")
            # The boundary of a request: a part of the engine is down or restarting. Nothing
            # was acknowledged, so the caller retries (after Retry-After).
            why = faults.reason(exc)
            log.warning("%s %s: engine part unavailable: %s", request.method, request.path, why)
            return refusal(view, 503, "unavailable", f"engine part unavailable, retry: {why}")
        except ConnectionResetError:
            # The client went away in the middle of its body: nothing was read, so nothing
            # was stored; no one is left to answer.
            log.info("%s %s: the client disconnected mid-request", request.method, request.path)
            return refusal(view, 400, "client_disconnected", "the connection was lost")
        except Exception:  # last line of defence: log, count, answer 500
            log.exception("%s %s failed", request.method, request.path)
            return refusal(view, 500, "internal_error", "internal error; nothing was stored")

    return middleware


class HealthAndMetrics:
    """``/healthz`` and ``/metrics`` ask every actor at once, each with a deadline, so
    they answer quickly however many parts are down, and say which."""

    def __init__(self, view: EngineView) -> None:
        self._view = view

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/metrics", self.metrics)]

    async def healthz(self, request: web.Request) -> web.Response:
        """200 only while every actor serves; else 503 naming those that do not."""
        actors = self._view.named_actors()
        answers = await ask_all(
            {name: probe(name, actor) for name, actor in actors.items()}, HEALTH_TIMEOUT_S
        )
        down = {name: why for name, (_, why) in answers.items() if why is not None}
        rules_status = answers[REGISTRY][0]
        version, rules_error = rules_status if rules_status is not None else (None, None)
        body = {
            "status": "degraded" if down else "ok",
            "down": sorted(down),
            "reasons": down,
            "actors": len(actors),
            "registry_version": self._view.registry.version,
            "rules_version": version,
            "rules_error": rules_error,
        }
        response = json_response(body, 503 if down else 200)
        if down:
            response.headers["Retry-After"] = str(faults.RETRY_AFTER_S)
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        """Always 200: what the actors that answered in time report, and an up gauge per
        actor; a dead actor's own samples are missing until it is back."""
        actors = self._view.named_actors()
        answers = await ask_all(
            {name: actor.stats.remote() for name, actor in actors.items()}, METRICS_TIMEOUT_S
        )
        stats = [value for value, why in answers.values() if why is None]
        counters = metrics.merge(counter for counter, _ in stats)
        gauges = metrics.merge(gauge for _, gauge in stats)
        for name, (_, why) in answers.items():
            gauges[("openlines_actor_up", (("actor", name),))] = 1.0 if why is None else 0.0
        return web.Response(
            text=metrics.render(counters, gauges),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )


def probe(name: str, actor: Any) -> Awaitable[Any]:
    """The call that shows an actor serves: the registry actor's rules status (``/healthz``
    reports it), the others' ping (refused while a restarted actor is not serving yet)."""
    if name == REGISTRY:
        return actor.rules_status.remote()  # type: ignore[no-any-return]
    return actor.ping.remote()  # type: ignore[no-any-return]


async def ask_all(
    calls: dict[str, Awaitable[Any]], timeout_s: float
) -> dict[str, tuple[Any, str | None]]:
    """Each actor's answer by name, or None and the reason it gave none in time."""

    async def one(pending: Awaitable[Any]) -> tuple[Any, str | None]:
        try:
            return await asyncio.wait_for(call(pending), timeout_s), None
        except TimeoutError:
            return None, f"no answer within {timeout_s:.0f} s"
        except (ray.exceptions.RayError, EngineError) as exc:
            return None, faults.reason(exc)

    answers = await asyncio.gather(*(one(pending) for pending in calls.values()))
    return dict(zip(calls, answers, strict=True))


def build_app(view: EngineView, ingest: WebhookIngest) -> web.Application:
    app = web.Application(
        client_max_size=view.config.max_body_bytes, middlewares=[error_middleware(view)]
    )
    app.router.add_post("/hooks/{channel}/{connector_id}", ingest.handle)
    app.add_routes(PortalApi(view).routes())
    app.add_routes(AdminApi(view).routes())
    app.add_routes(HealthAndMetrics(view).routes())
    return app
