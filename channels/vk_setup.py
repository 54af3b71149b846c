"""Connecting a VK community in one step (docs/channels/vk.md, "Connecting").

``groups.getTokenPermissions`` proves the community token and that it may send messages
(``messages``) and set up a Callback server (``manage``); ``groups.getCallbackConfirmationCode``
gives the string the engine must answer VK's ``confirmation`` with, so the connector is
stored with it before the server is added. ``groups.addCallbackServer`` registers the
engine's webhook with a generated secret, ``groups.setCallbackSettings`` chooses the API
version and the events the engine reads, and ``groups.getCallbackServers`` confirms VK
reached it (status ``ok``). ``groups.deleteCallbackServer`` undoes it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from channels.base import ApiBaseUrl
from channels.setup_calls import new_secret, setup_post
from engine.errors import ProviderSetupError

API_VERSION = "5.199"
NEEDED_PERMISSIONS = ("messages", "manage")
SERVER_TITLE = "Open Lines"
EVENTS = (
    "message_new",
    "message_edit",
    "message_read",
    "message_typing_state",
    "message_allow",
    "message_deny",
)
"""The Callback API events the engine reads (docs/channels/vk.md); all others are off."""
BAD_TOKEN_ERRORS = frozenset({5, 27, 28})
"""User authorization failed, group or application token invalid."""


class VkConnect(BaseModel):
    """What ``openlines connect vk`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    access_token: str = Field(
        min_length=1, description="A community token with the messages and manage rights."
    )
    group_id: int = Field(gt=0, description="The community's id.")
    api_base_url: ApiBaseUrl = Field(
        default="https://api.vk.com", description="API server, or a test stand-in."
    )


async def prepare(session: aiohttp.ClientSession, given: VkConnect) -> dict[str, object]:
    """The credentials to store: the token checked, the confirmation code, a new secret."""
    call = VkSetupCalls(session, given.api_base_url, given.access_token)
    granted = await call("groups.getTokenPermissions", {})
    names = {p.get("name") for p in granted.get("permissions", []) if isinstance(p, dict)}
    missing = [name for name in NEEDED_PERMISSIONS if name not in names]
    if missing:
        raise ProviderSetupError(
            f"vk: the community token lacks the {', '.join(missing)} right(s); create a token "
            f"with {', '.join(NEEDED_PERMISSIONS)} in the community's API settings"
        )
    confirmed = await call("groups.getCallbackConfirmationCode", {"group_id": given.group_id})
    return {
        "access_token": given.access_token,
        "group_id": given.group_id,
        "secret": new_secret(),
        "confirmation_code": confirmed["code"],
        "api_base_url": given.api_base_url,
    }


async def add_server(call: VkSetupCalls, group_id: int, url: str, secret: str) -> dict[str, object]:
    """Register the webhook, choose its events, and check that VK confirmed it."""
    added = await call(
        "groups.addCallbackServer",
        {"group_id": group_id, "url": url, "title": SERVER_TITLE, "secret_key": secret},
    )
    server_id = int(added["server_id"])
    settings: dict[str, Any] = {"group_id": group_id, "server_id": server_id}
    settings["api_version"] = API_VERSION
    settings.update({event: 1 for event in EVENTS})
    await call("groups.setCallbackSettings", settings)
    servers = await call(
        "groups.getCallbackServers", {"group_id": group_id, "server_ids": server_id}
    )
    status = next(
        (s.get("status") for s in servers.get("items", []) if s.get("id") == server_id), None
    )
    if status != "ok":
        await call("groups.deleteCallbackServer", {"group_id": group_id, "server_id": server_id})
        raise ProviderSetupError(
            f"vk: the Callback server at {url} was not confirmed (status {status!r}): VK must "
            "reach that URL; set public_url in the engine's config to an address VK can reach"
        )
    return {"callback_server_id": server_id}


class VkSetupCalls:
    """API calls with one community token, answered as ``response`` or a clear error."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base_url = base_url
        self._token = token

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        form = {name: str(value) for name, value in params.items()}
        status, payload = await setup_post(
            self._session,
            f"{self._base_url}/method/{method}",
            what=f"vk {method}",
            data={**form, "v": API_VERSION},
            headers={"Authorization": f"Bearer {self._token}"},
        )
        if not isinstance(payload, dict):
            raise ProviderSetupError(f"vk {method}: HTTP {status} with a non-JSON body")
        error = payload.get("error")
        if isinstance(error, dict):
            code = error.get("error_code")
            hint = ": the access token is wrong" if code in BAD_TOKEN_ERRORS else ""
            raise ProviderSetupError(f"vk {method}: error {code}: {error.get('error_msg')}{hint}")
        if "response" not in payload:
            raise ProviderSetupError(f"vk {method}: HTTP {status} without a response")
        return payload["response"]
