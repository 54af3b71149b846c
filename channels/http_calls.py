"""Outbound HTTP shared by the channels: one POST, and the first look at its answer.

What a failure without an answer means (refused, reset, timed out: the call may pass later)
and what an answer that is not a JSON object means (a proxy's error page in front of the
API) is the same for every provider; what a JSON answer means is each channel's own
``check_response``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
import orjson

from engine.errors import PermanentSendError, RetryableSendError


class HttpAnswer(NamedTuple):
    """A provider's answer, read whole."""

    status: int
    body: bytes
    headers: Mapping[str, str]


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    what: str,
    timeout_s: float,
    json: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    allow_redirects: bool = True,
    redact: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """POST and read the answer; a call that got none raises ``RetryableSendError``.

    ``what`` names the call in the error (``"telegram sendMessage"``). ``redact`` maps
    secrets that aiohttp's error text may quote (a token in the URL path) to what is shown
    instead, so the error can be logged.
    """
    return await call(
        session,
        "POST",
        url,
        what=what,
        timeout_s=timeout_s,
        json=json,
        data=data,
        headers=headers,
        allow_redirects=allow_redirects,
        redact=redact,
    )


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    timeout_s: float,
    json: Any = None,
    data: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    allow_redirects: bool = True,
    redact: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """``post`` for any method (the set-up calls' GET and DELETE)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=headers,
            timeout=timeout,
            allow_redirects=allow_redirects,
        ) as response:
            return HttpAnswer(response.status, await response.read(), response.headers)
    except (TimeoutError, aiohttp.ClientError) as exc:
        detail = str(exc)
        for secret, shown in (redact or {}).items():
            detail = detail.replace(secret, shown)
        raise RetryableSendError(f"{what}: {type(exc).__name__}: {detail}") from exc


def retryable_status(status: int) -> bool:
    """Whether the same call may pass later after this HTTP status: throttled or a server error."""
    return status == 429 or status >= 500


def json_object(what: str, status: int, body: bytes) -> dict[str, Any]:
    """The answer's JSON object; any other body raises, retryable after ``retryable_status``."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        message = f"{what}: HTTP {status} with a non-JSON body"
        if retryable_status(status):
            raise RetryableSendError(message)
        raise PermanentSendError(message)
    return payload
