"""Connecting a Meta connector in one step (docs/channels/facebook.md, "Connecting").

``openlines connect facebook|instagram|whatsapp`` (docs/channels/contract.md, "Connecting"):

1. ``prepare``: ``GET {graph}/debug_token?input_token=<token>`` with the app's own token
   (``<app id>|<app secret>``): the token must be valid, this app's, and hold every
   permission the connector needs (``SetupPlan.scopes``); a missing one is named. A verify
   token is generated for the GET handshake.
2. The engine stores the connector, so its app-level webhook answers.
3. ``subscribe``: ``POST {graph}/{app id}/subscriptions`` points the app's subscription of
   the object (``page``, ``instagram``, ``whatsapp_business_account``) at the engine, with
   the fields and the verify token (Meta checks the URL at once with the GET handshake);
   then ``POST {graph}/{node}/subscribed_apps`` installs the app on the page, account or
   business account with the fields the connector reads.

``unsubscribe`` is ``DELETE {graph}/{node}/subscribed_apps``: the app's callback stays, since
other connectors of the app use it. Every failure is a ``ProviderSetupError`` saying what to
fix, in Meta's words and with what its code means.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from channels.meta.credentials import MetaAppCredentials
from channels.meta.graph_calls import graph_call
from engine.errors import ChannelError, ProviderSetupError


@dataclass(frozen=True)
class SetupPlan:
    """What one connector's set-up asks of Meta."""

    app_object: str
    """The app's webhook object: ``page``, ``instagram``, ``whatsapp_business_account``."""
    app_fields: tuple[str, ...]
    """The object's webhook fields the app subscribes to."""
    node: str
    """The page, Instagram account or WhatsApp business account to install the app on."""
    token: str
    node_fields: tuple[str, ...]
    """The fields subscribed on the node (none for a WhatsApp business account)."""
    scopes: tuple[str, ...]
    """The permissions the token must hold."""


async def check_token(
    session: aiohttp.ClientSession, credentials: MetaAppCredentials, plan: SetupPlan
) -> None:
    """Refuse a token that is invalid, another app's, or short of a permission."""
    if credentials.app_id is None:
        raise ProviderSetupError("app_id is needed to check the token (debug_token asks the app)")
    answer = await _call(
        session,
        credentials,
        "GET",
        "debug_token",
        token=_app_token(credentials),
        params={"input_token": plan.token},
        what="meta debug_token",
    )
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("is_valid") is not True:
        raise ProviderSetupError(f"the access token is invalid or expired: {_token_error(data)}")
    if str(data.get("app_id")) != credentials.app_id:
        raise ProviderSetupError(
            f"the access token belongs to app {data.get('app_id')}, not {credentials.app_id}"
        )
    granted = data.get("scopes")
    held = {s for s in granted if isinstance(s, str)} if isinstance(granted, list) else set()
    missing = [scope for scope in plan.scopes if scope not in held]
    if missing:
        raise ProviderSetupError(
            f"the access token lacks {', '.join(missing)}: grant them to the app and issue "
            "a new token"
        )


async def subscribe(
    session: aiohttp.ClientSession,
    credentials: MetaAppCredentials,
    plan: SetupPlan,
    webhook_url: str,
) -> None:
    """Point the app's webhook at the engine, then install the app on ``plan.node``."""
    assert credentials.app_id is not None  # check_token refused a connector without one
    await _call(
        session,
        credentials,
        "POST",
        f"{credentials.app_id}/subscriptions",
        token=_app_token(credentials),
        params={
            "object": plan.app_object,
            "callback_url": webhook_url,
            "fields": ",".join(plan.app_fields),
            "verify_token": credentials.verify_token,
            "include_values": "true",
        },
        what=f"meta {plan.app_object} subscription",
    )
    node_params = {"subscribed_fields": ",".join(plan.node_fields)} if plan.node_fields else None
    await _confirmed(session, credentials, plan, "POST", node_params)


async def unsubscribe(
    session: aiohttp.ClientSession, credentials: MetaAppCredentials, plan: SetupPlan
) -> None:
    """Uninstall the app from ``plan.node``: Meta stops posting its events."""
    await _confirmed(session, credentials, plan, "DELETE", None)


async def _confirmed(
    session: aiohttp.ClientSession,
    credentials: MetaAppCredentials,
    plan: SetupPlan,
    method: str,
    params: dict[str, str] | None,
) -> None:
    what = f"meta {method} {plan.node}/subscribed_apps"
    path = f"{plan.node}/subscribed_apps"
    answer = await _call(
        session, credentials, method, path, token=plan.token, params=params, what=what
    )
    if answer.get("success") is not True:
        raise ProviderSetupError(f"{what}: Meta did not confirm ({answer})")


async def _call(
    session: aiohttp.ClientSession,
    credentials: MetaAppCredentials,
    method: str,
    path: str,
    *,
    token: str,
    params: dict[str, str] | None,
    what: str,
) -> dict[str, object]:
    try:
        return await graph_call(
            session,
            method,
            f"{credentials.graph_api_url}/{path}",
            token=token,
            params=params,
            what=what,
            timeout_s=credentials.request_timeout_s,
        )
    except ChannelError as exc:
        raise ProviderSetupError(str(exc)) from None


def _app_token(credentials: MetaAppCredentials) -> str:
    return f"{credentials.app_id}|{credentials.app_secret}"


def _token_error(data: object) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return "debug_token says it is not valid"
