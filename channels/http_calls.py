"""Outbound HTTP shared by the channels: one POST, and the first look at its answer.

What a failure without an answer means (refused, reset, timed out: the call may pass later)
and what an answer that is not a JSON object means (a proxy's error page in front of the
API) is the same for every provider; what a JSON answer means is each channel's own
``check_response``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
import orjson

from engine.delivery.retry import http_date_s, parse_retry_after
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


def json_object(
    what: str, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The answer's JSON object; any other body raises, retryable after ``retryable_status``
    (after the answer's ``Retry-After`` when ``headers`` carry one: a front server's 429 or
    503 page names it in the header, not in a body the provider's API would write)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        message = f"{what}: HTTP {status} with a non-JSON body"
        if retryable_status(status):
            raise RetryableSendError(message, retry_after_s(headers or {}))
        raise PermanentSendError(message)
    return payload


def retry_after_s(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """The answer's ``Retry-After`` in seconds from now, or ``None`` when it has none that
    reads (delay-seconds or an HTTP date: ``engine.delivery.retry.parse_retry_after``;
    docs/channels/contract.md, "Throttling answers").

    An HTTP date is measured against the answer's own ``Date`` header, the server's clock,
    so a skew between the provider's clock and ours neither stretches nor cuts the wait; an
    answer without ``Date`` is measured against ``now_s`` (the caller's clock), else the
    system time.
    """
    value = headers.get("Retry-After")
    if value is None:
        return None
    reference = http_date_s(headers.get("Date"))
    if reference is None:
        reference = now_s if now_s is not None else time.time()
    return parse_retry_after(value, reference)
