"""A provider's published signing keys, as an OpenID-style key set on 127.0.0.1: ``GET /keys``
answers ``{"keys": [{"kid", "k"}]}``; ``fetches`` counts the calls, ``down`` answers 503.
For channels that verify asynchronously (``channels.key_cache``)."""

from __future__ import annotations

from aiohttp import web

from tests.standins.server import LoopbackServer


class KeyServerStandIn(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.keys = {"k1": "secret-1"}
        self.fetches = 0
        self.down = False

    @property
    def url(self) -> str:
        return f"{self.base_url}/keys"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/keys", self._keys)

    async def _keys(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.down:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"keys": [{"kid": k, "k": v} for k, v in self.keys.items()]})
