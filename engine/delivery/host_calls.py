"""The portal API's calls on a ``MailboxHost``: what a portal actor answers, as plain code.

Each call first refuses a replayed request id (the host remembers the ids it has seen, so a
replay is caught whichever channel actor it reaches), then asks the portal's router, the
single writer of its dialogs. The portal actor only wires these to Ray
(``actors.portal``); tests call them in one process (``engine.web.ports.PortalCalls``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from engine.api_models import PortalCall, ReplyBody
from engine.contacts import answer as crm_answer
from engine.crm.calls import CrmCall
from engine.delivery.host import MailboxHost
from engine.errors import ValidationFailedError
from engine.routing.operator_calls import operate
from engine.routing.portal_router import PortalRouter
from engine.routing.state import OperatorStatus
from engine.store.records import DeadLetter

DIALOG_ACTIONS = ("accept", "skip", "finish")


class HostCalls:
    def __init__(self, ready: Callable[[], Awaitable[MailboxHost]]) -> None:
        self._ready = ready
        """The host once it serves; raises ``UnavailableError`` while it cannot."""

    async def _router(self, portal_id: str, request_id: str | None) -> PortalRouter:
        """The portal's router, after refusing a replayed API request id (admin calls,
        authenticated by the bearer token, have none)."""
        host = await self._ready()
        if request_id is not None:
            await host.check_request(portal_id, request_id)
        return await host.router(portal_id)

    async def reply(self, portal_id: str, request_id: str, dialog_id: str, body: ReplyBody) -> str:
        router = await self._router(portal_id, request_id)
        return await router.reply(dialog_id, body)

    async def operate(self, portal_id: str, request_id: str, call: PortalCall) -> tuple[int, bytes]:
        """A call of the operator's workflow; the HTTP status and JSON body to answer."""
        return await operate(await self._router(portal_id, request_id), call)

    async def dialog(self, portal_id: str, request_id: str, dialog_id: str) -> dict[str, Any]:
        router = await self._router(portal_id, request_id)
        return (await router.dialog(dialog_id)).view().model_dump(mode="json")

    async def dialog_action(
        self, portal_id: str, request_id: str, dialog_id: str, action: str, operator_id: str
    ) -> dict[str, Any]:
        """accept, skip or finish; the dialog as it stands afterwards."""
        if action not in DIALOG_ACTIONS:
            raise ValidationFailedError(f"action must be one of {', '.join(DIALOG_ACTIONS)}")
        router = await self._router(portal_id, request_id)
        if action == "accept":
            dialog = await router.accept(dialog_id, operator_id)
        elif action == "skip":
            dialog = await router.skip(dialog_id, operator_id)
        else:
            dialog = await router.finish(dialog_id, operator_id or None)
        return dialog.view().model_dump(mode="json")

    async def set_operator(
        self,
        portal_id: str,
        request_id: str,
        operator_id: str,
        status: OperatorStatus | None,
        working: bool | None,
    ) -> dict[str, Any]:
        router = await self._router(portal_id, request_id)
        operator = await router.set_operator(operator_id, status, working)
        return {"operator_id": operator_id, "status": operator.status, "working": operator.working}

    async def line_operators(
        self, portal_id: str, request_id: str, line_id: str
    ) -> list[dict[str, object]]:
        router = await self._router(portal_id, request_id)
        return router.operators(line_id)

    async def explain(
        self, portal_id: str, request_id: str | None, dialog_id: str, limit: int
    ) -> dict[str, object]:
        router = await self._router(portal_id, request_id)
        return await router.explain(dialog_id, limit)

    async def set_responsible(
        self,
        portal_id: str,
        request_id: str | None,
        connector_id: str,
        customer_id: str,
        operator_id: str | None,
    ) -> None:
        router = await self._router(portal_id, request_id)
        await router.set_responsible(connector_id, customer_id, operator_id)

    async def crm(self, portal_id: str, request_id: str, call: CrmCall) -> bytes:
        """A CRM call of the portal API (``engine.contacts``, docs/crm.md), answered as JSON
        bytes: a history embeds stored events as they are (``orjson.Fragment``)."""
        router = await self._router(portal_id, request_id)
        return orjson.dumps(await crm_answer(router, call))

    async def dead_letters(
        self, portal_id: str, request_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]:
        host = await self._ready()
        return await host.dead_letters(portal_id, request_id, limit, after_event_id)


API_CALLS = frozenset(
    name
    for name, value in vars(HostCalls).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(value)
)
"""The calls a portal server answers for the portal API, by name (``actors.portal.api``)."""
