"""The ``groups.*`` methods of VK's API that set up a Callback server, for ``VkApiStandIn``.

As VK does: ``getTokenPermissions`` lists the community token's rights;
``getCallbackConfirmationCode`` gives the string the webhook must answer ``confirmation``
with; ``addCallbackServer`` registers a URL with its secret key and posts the
``confirmation`` event to it at once, the server's status ``ok`` only when the webhook
answered exactly the code (else ``failed``); ``setCallbackSettings`` keeps the API version
and events; ``getCallbackServers`` lists servers with their status;
``deleteCallbackServer`` removes one. Errors are VK's: 100 for a missing parameter, 104 for
an unknown server.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ALL_PERMISSIONS = (("messages", 4096), ("manage", 262144), ("photos", 4), ("docs", 131072))


@dataclass
class CallbackServer:
    id: int
    url: str
    title: str
    secret_key: str
    status: str
    settings: dict[str, str] = field(default_factory=dict)


class VkCallbackServers:
    """One community's Callback servers and the token's rights."""

    def __init__(self, group_id: int, confirmation_code: str = "693d0ba9") -> None:
        self.group_id = group_id
        self.confirmation_code = confirmation_code
        self.permissions = [name for name, _ in ALL_PERMISSIONS]
        self.servers: dict[int, CallbackServer] = {}
        self._ids = itertools.count(1)

    async def answer(
        self, method: str, params: dict[str, str], session: aiohttp.ClientSession
    ) -> dict[str, Any]:
        if method == "groups.getTokenPermissions":
            granted = [
                {"setting": s, "name": n} for n, s in ALL_PERMISSIONS if n in self.permissions
            ]
            return {
                "response": {"mask": sum(p["setting"] for p in granted), "permissions": granted}
            }
        if params.get("group_id") != str(self.group_id):
            return _error(100, "One of the parameters specified was missing or invalid: group_id")
        if method == "groups.getCallbackConfirmationCode":
            return {"response": {"code": self.confirmation_code}}
        if method == "groups.addCallbackServer":
            return await self._add(params, session)
        server = self.servers.get(int(params.get("server_id") or params.get("server_ids") or 0))
        if method == "groups.getCallbackServers":
            items = [vars(s) for s in ([server] if server else self.servers.values())]
            shown = [{k: v for k, v in item.items() if k != "settings"} for item in items]
            return {"response": {"count": len(shown), "items": shown}}
        if server is None:
            return _error(104, "Not found")
        if method == "groups.setCallbackSettings":
            server.settings = {k: v for k, v in params.items() if k not in ("group_id", "v")}
            return {"response": 1}
        if method == "groups.deleteCallbackServer":
            del self.servers[server.id]
            return {"response": 1}
        return _error(3, "Unknown method passed")

    async def _add(self, params: dict[str, str], session: aiohttp.ClientSession) -> dict[str, Any]:
        url = params.get("url")
        if not url:
            return _error(100, "One of the parameters specified was missing or invalid: url")
        secret = params.get("secret_key", "")
        status = await self._confirm(url, secret, session)
        server = CallbackServer(next(self._ids), url, params.get("title", ""), secret, status)
        self.servers[server.id] = server
        return {"response": {"server_id": server.id}}

    async def _confirm(self, url: str, secret: str, session: aiohttp.ClientSession) -> str:
        event = {"type": "confirmation", "group_id": self.group_id, "secret": secret}
        try:
            async with session.post(url, json=event) as response:
                answered = await response.text()
        except aiohttp.ClientError:
            return "failed"
        return "ok" if response.status == 200 and answered == self.confirmation_code else "failed"


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"error_code": code, "error_msg": message}}
