"""``/healthz`` and ``/metrics``: every part is asked at once, each with a deadline, so
they answer quickly however many parts are down, and say which."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from engine import metrics
from engine.errors import EngineError
from engine.web.common import json_response
from engine.web.middleware import RETRY_AFTER_S
from engine.web.ports import Engine

HEALTH_TIMEOUT_S = 2.0
"""How long ``/healthz`` waits for each part; all are asked at once."""
METRICS_TIMEOUT_S = 5.0
"""How long ``/metrics`` waits for each part's numbers; all are asked at once."""
RULES = "rules"
"""``/healthz`` also reports the rules in force (or why the last edit was not taken)."""


class HealthAndMetrics:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/metrics", self.metrics)]

    async def healthz(self, request: web.Request) -> web.Response:
        """200 only while every part serves; else 503 naming those that do not."""
        parts = self._engine.parts()
        calls: dict[str, Awaitable[Any]] = {name: part.ping() for name, part in parts.items()}
        calls[RULES] = self._engine.registrar.rules_status()
        answers = await ask_all(calls, HEALTH_TIMEOUT_S)
        rules_status, _ = answers.pop(RULES)
        down = {name: why for name, (_, why) in answers.items() if why is not None}
        version, rules_error = rules_status if rules_status is not None else (None, None)
        body = {
            "status": "degraded" if down else "ok",
            "down": sorted(down),
            "reasons": down,
            "actors": len(parts),
            "registry_version": self._engine.registry.version,
            "rules_version": version,
            "rules_error": rules_error,
        }
        response = json_response(body, 503 if down else 200)
        if down:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        """Always 200: what the parts that answered in time report, and an up gauge per
        part; a dead part's own samples are missing until it is back."""
        parts = self._engine.parts()
        answers = await ask_all(
            {name: part.stats() for name, part in parts.items()}, METRICS_TIMEOUT_S
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


async def ask_all(
    calls: dict[str, Awaitable[Any]], timeout_s: float
) -> dict[str, tuple[Any, str | None]]:
    """Each part's answer by name, or None and the reason it gave none in time."""

    async def one(pending: Awaitable[Any]) -> tuple[Any, str | None]:
        try:
            return await asyncio.wait_for(pending, timeout_s), None
        except TimeoutError:
            return None, f"no answer within {timeout_s:.0f} s"
        except EngineError as exc:
            return None, str(exc)

    answers = await asyncio.gather(*(one(pending) for pending in calls.values()))
    return dict(zip(calls, answers, strict=True))
