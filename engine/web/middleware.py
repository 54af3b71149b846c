"""Every refusal is JSON with a reason and is counted; nothing a handler refuses was
stored, so nothing stored is lost. A 503 carries ``Retry-After``."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from engine.errors import EngineError
from engine.metrics import Counters
from engine.web.common import json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RETRY_AFTER_S = 2
"""What a 503 tells the caller to wait: about one actor restart on a 2-core machine."""


def refusal(
    counters: Counters,
    status: int,
    reason: str,
    message: str,
    details: dict[str, object] | None = None,
) -> web.Response:
    counters.inc("openlines_rejected_total", reason=reason)
    response = json_response({"error": reason, "message": message, **(details or {})}, status)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    elif status == 429 and details is not None:
        response.headers["Retry-After"] = str(math.ceil(float(str(details["retry_after_s"]))))
    return response


def error_middleware(counters: Counters, max_body: int) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_body:
            return refusal(counters, 413, "body_too_large", f"body over {max_body} bytes")
        try:
            return await handler(request)
        except EngineError as exc:
            if exc.http_status >= 500:
                log.warning("%s %s: %s", request.method, request.path, exc)
            return refusal(counters, exc.http_status, exc.reason, str(exc), exc.details())
        except web.HTTPRequestEntityTooLarge:
            return refusal(counters, 413, "body_too_large", f"body over {max_body} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = exc.reason.lower().replace(" ", "_")
            return refusal(
                counters, exc.status, reason, f"{exc.reason}: {request.method} {request.path}"
            )
        except TimeoutError:
            # The boundary of a request: a part did not answer in time. Nothing was
            # acknowledged, so the caller retries (after Retry-After).
            log.warning("%s %s: no answer in time", request.method, request.path)
            return refusal(counters, 503, "unavailable", "engine part did not answer; retry")
        except ConnectionResetError:
            # The client went away in the middle of its body: nothing was read, so nothing
            # was stored; no one is left to answer.
            log.info("%s %s: the client disconnected mid-request", request.method, request.path)
            return refusal(counters, 400, "client_disconnected", "the connection was lost")
        except Exception:  # last line of defence: log, count, answer 500
            log.exception("%s %s failed", request.method, request.path)
            return refusal(counters, 500, "internal_error", "internal error; nothing was stored")

    return middleware
