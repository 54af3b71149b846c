"""The provider calls of connecting and disconnecting a connector (docs/channels/contract.md,
"Connecting"): one POST whose failure is a ``ProviderSetupError`` naming the call, and the
secrets the engine generates for a provider to present on every webhook."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from channels.http_calls import post
from engine.errors import ProviderSetupError, RetryableSendError

SETUP_TIMEOUT_S = 30.0


async def setup_post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    what: str,
    json: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    redact: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """POST a set-up call; returns the HTTP status and the decoded JSON answer (``None`` when
    it is not JSON). A call without an answer is a ``ProviderSetupError``."""
    try:
        answer = await post(
            session,
            url,
            what=what,
            timeout_s=SETUP_TIMEOUT_S,
            json=json,
            data=data,
            headers=headers,
            redact=redact,
        )
    except RetryableSendError as exc:
        raise ProviderSetupError(f"{exc}; is the provider reachable from the engine?") from None
    try:
        return answer.status, orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return answer.status, None


def new_secret(length: int = 48) -> str:
    """A webhook secret of letters, digits, ``_`` and ``-``: what Telegram's ``secret_token``
    and VK's ``secret_key`` both accept (VK: at most 50 characters)."""
    return secrets.token_urlsafe(length)[:length]
