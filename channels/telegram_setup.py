"""Connecting a Telegram bot in one step (docs/channels/telegram.md, "Connecting"): ``getMe``
proves the token, ``setWebhook`` points the bot at the engine with a generated secret and the
updates the engine reads, ``deleteWebhook`` undoes it. And ``getUpdates`` for a connector that
polls instead (docs/channels/telegram.md, "Polling")."""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from channels.base import ApiBaseUrl
from channels.setup_calls import new_secret, setup_post
from engine.errors import PermanentSendError, ProviderSetupError

ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
)
"""The updates the engine reads; ``message_reaction`` must be asked for by name (Telegram
leaves it out by default)."""


class TelegramConnect(BaseModel):
    """What ``openlines connect telegram`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bot_token: str = Field(
        min_length=1, pattern=r"^[^/?#\s]+$", description="The bot's token from @BotFather."
    )
    api_base_url: ApiBaseUrl = Field(
        default="https://api.telegram.org", description="Bot API server, or a test stand-in."
    )


async def prepare(session: aiohttp.ClientSession, given: TelegramConnect) -> dict[str, object]:
    """The credentials to store once ``getMe`` accepted the token."""
    await bot_call(session, given.api_base_url, given.bot_token, "getMe", {})
    return {
        "bot_token": given.bot_token,
        "secret_token": new_secret(),
        "api_base_url": given.api_base_url,
    }


async def set_webhook(
    session: aiohttp.ClientSession, base_url: str, token: str, secret: str, url: str
) -> None:
    params = {"url": url, "secret_token": secret, "allowed_updates": list(ALLOWED_UPDATES)}
    await bot_call(session, base_url, token, "setWebhook", params)


async def delete_webhook(session: aiohttp.ClientSession, base_url: str, token: str) -> None:
    await bot_call(session, base_url, token, "deleteWebhook", {})


UPDATES_PER_POLL = 100


def get_updates_params(offset: int | None) -> dict[str, Any]:
    """One short poll of ``getUpdates`` after ``offset`` (None: from the oldest kept)."""
    params: dict[str, Any] = {
        "timeout": 0,
        "limit": UPDATES_PER_POLL,
        "allowed_updates": list(ALLOWED_UPDATES),
    }
    if offset is not None:
        params["offset"] = offset
    return params


def updates_of(result: Any) -> list[dict[str, Any]]:
    """``getUpdates``'s updates; those without an integer ``update_id`` are dropped here,
    as no cursor can pass them."""
    if not isinstance(result, list):
        raise PermanentSendError("telegram getUpdates: the result is not a list")
    return [
        update
        for update in result
        if isinstance(update, dict)
        and isinstance(update.get("update_id"), int)
        and not isinstance(update.get("update_id"), bool)
    ]


async def bot_call(
    session: aiohttp.ClientSession, base_url: str, token: str, method: str, params: dict[str, Any]
) -> Any:
    """One Bot API call; its ``result``, or a ``ProviderSetupError`` in Telegram's words."""
    status, payload = await setup_post(
        session,
        f"{base_url}/bot{token}/{method}",
        what=f"telegram {method}",
        json=params,
        redact={token: "<bot token>"},
    )
    if isinstance(payload, dict) and payload.get("ok") is True:
        return payload.get("result")
    said = payload.get("description") if isinstance(payload, dict) else None
    described = said or f"HTTP {status} with a non-JSON body"
    hint = ": the bot token is wrong (check it with @BotFather)" if status in (401, 404) else ""
    raise ProviderSetupError(f"telegram {method}: {described}{hint}")
