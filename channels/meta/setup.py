"""Connecting a Meta connector in one step: check the token, subscribe the app's webhook.

What ``openlines connect facebook|instagram|whatsapp`` does (docs/channels/facebook.md,
"Connecting"):

1. ``GET {graph}/debug_token?input_token=<token>`` with the app's own token
   (``<app id>|<app secret>``): the token must be valid, belong to this app, and hold every
   permission the connector needs (``SetupPlan.scopes``); a missing one is named.
2. ``POST {graph}/{node}/subscribed_apps`` with the webhook fields the connector reads
   (``subscribed_fields``; WhatsApp subscribes the business account, which has none):
   Meta starts posting this page, account or number's events to the app's callback.

``disconnect`` is ``DELETE {graph}/{node}/subscribed_apps``. Every failure is a
``ConfigError`` saying what to fix, never a half-connected connector reported as done.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from channels.meta.credentials import MetaAppCredentials
from channels.meta.graph_calls import graph_call
from engine.errors import ChannelError, ConfigError


@dataclass(frozen=True)
class SetupPlan:
    """What one connector's set-up asks of Meta."""

    node: str
    """The page, Instagram account or WhatsApp business account to subscribe."""
    token: str
    fields: tuple[str, ...]
    """The webhook fields to subscribe (none for WhatsApp, subscribed per business account)."""
    scopes: tuple[str, ...]
    """The permissions the token must hold."""


async def check_token(
    session: aiohttp.ClientSession, credentials: MetaAppCredentials, plan: SetupPlan
) -> None:
    """Raise ``ConfigError`` for a token that is invalid, another app's, or short of a scope."""
    if credentials.app_id is None:
        raise ConfigError("app_id is needed to check the token (debug_token asks the app)")
    try:
        answer = await graph_call(
            session,
            "GET",
            f"{credentials.graph_api_url}/debug_token",
            token=f"{credentials.app_id}|{credentials.app_secret}",
            params={"input_token": plan.token},
            what="debug_token",
            timeout_s=credentials.request_timeout_s,
        )
    except ChannelError as exc:
        raise ConfigError(f"cannot check the token: {exc}") from exc
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("is_valid") is not True:
        raise ConfigError(f"the access token is invalid or expired: {_token_error(data)}")
    if str(data.get("app_id")) != credentials.app_id:
        raise ConfigError(
            f"the access token belongs to app {data.get('app_id')}, not {credentials.app_id}"
        )
    granted = data.get("scopes")
    held = (
        {scope for scope in granted if isinstance(scope, str)}
        if isinstance(granted, list)
        else set()
    )
    missing = [scope for scope in plan.scopes if scope not in held]
    if missing:
        raise ConfigError(
            f"the access token lacks {', '.join(missing)}: grant them to the app and "
            "issue a new token"
        )


async def subscribe(
    session: aiohttp.ClientSession, credentials: MetaAppCredentials, plan: SetupPlan
) -> None:
    """Subscribe the app to ``plan.node``'s webhook fields."""
    params = {"subscribed_fields": ",".join(plan.fields)} if plan.fields else None
    await _subscription(session, credentials, plan, "POST", params)


async def unsubscribe(
    session: aiohttp.ClientSession, credentials: MetaAppCredentials, plan: SetupPlan
) -> None:
    """Stop the app's webhook for ``plan.node``."""
    await _subscription(session, credentials, plan, "DELETE", None)


async def _subscription(
    session: aiohttp.ClientSession,
    credentials: MetaAppCredentials,
    plan: SetupPlan,
    method: str,
    params: dict[str, str] | None,
) -> None:
    what = f"{method} {plan.node}/subscribed_apps"
    try:
        answer = await graph_call(
            session,
            method,
            f"{credentials.graph_api_url}/{plan.node}/subscribed_apps",
            token=plan.token,
            params=params,
            what=what,
            timeout_s=credentials.request_timeout_s,
        )
    except ChannelError as exc:
        raise ConfigError(str(exc)) from exc
    if answer.get("success") is not True:
        raise ConfigError(f"{what}: Meta did not confirm ({answer})")


def _token_error(data: object) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return "debug_token says it is not valid"
