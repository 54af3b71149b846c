"""Connecting a Viber bot in one step (docs/channels/viber.md, "Connecting").

``get_account_info`` proves the auth token; ``set_webhook`` points the bot at the engine and
chooses the callbacks it reads. Viber checks the URL at once with a signed ``webhook``
callback that must be answered 200, so the connector is stored before the call. ``set_webhook``
with an empty URL undoes it. Viber answers HTTP 200 with a ``status`` (0: ok) to every call.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from channels.base import ApiBaseUrl
from channels.setup_calls import setup_post
from engine.errors import ProviderSetupError

EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")
BAD_TOKEN_STATUS = 2  # invalidAuthToken


class ViberConnect(BaseModel):
    """What ``openlines connect viber`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auth_token: str = Field(min_length=1, description="The bot's auth token.")
    sender_name: str = Field(
        default="Support", min_length=1, max_length=28, description="Shown as the sender."
    )
    api_base_url: ApiBaseUrl = Field(
        default="https://chatapi.viber.com", description="Bot API server, or a test stand-in."
    )


async def prepare(session: aiohttp.ClientSession, given: ViberConnect) -> dict[str, object]:
    """The credentials to store once ``get_account_info`` accepted the token."""
    await viber_call(session, given.api_base_url, given.auth_token, "get_account_info", {})
    return {
        "auth_token": given.auth_token,
        "sender_name": given.sender_name,
        "api_base_url": given.api_base_url,
    }


async def set_webhook(session: aiohttp.ClientSession, base_url: str, token: str, url: str) -> None:
    """Point the bot at ``url`` (an empty one: at nothing)."""
    body: dict[str, Any] = {"url": url}
    if url:
        body.update(event_types=list(EVENT_TYPES), send_name=True, send_photo=True)
    await viber_call(session, base_url, token, "set_webhook", body)


async def viber_call(
    session: aiohttp.ClientSession, base_url: str, token: str, method: str, body: dict[str, Any]
) -> dict[str, Any]:
    """One Bot API call; its answer, or a ``ProviderSetupError`` in Viber's words."""
    status, payload = await setup_post(
        session,
        f"{base_url}/pa/{method}",
        what=f"viber {method}",
        json=body,
        headers={"X-Viber-Auth-Token": token},
    )
    if not isinstance(payload, dict):
        raise ProviderSetupError(f"viber {method}: HTTP {status} with a non-JSON body")
    code = payload.get("status")
    if status == 200 and code == 0:
        return payload
    hint = ": the auth token is wrong" if code == BAD_TOKEN_STATUS else ""
    raise ProviderSetupError(
        f"viber {method}: status {code}: {payload.get('status_message')}{hint}"
    )
