"""What every Meta channel shares: the app's signature, the GET handshake and the app-level
webhook (docs/channels/contract.md; docs/channels/facebook.md, "Webhook")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import aiohttp

from channels.base import AppWebhookPart, Channel, RawRequest, WebhookReply
from channels.meta.app_webhook import (
    EVENT_RECEIVED,
    answer_handshake,
    app_secret_key,
    by_account,
    split_notification,
)
from channels.meta.credentials import MetaAppCredentials
from channels.meta.setup import SetupPlan, check_token, subscribe, unsubscribe
from channels.meta.signature import verify_hub_signature


class MetaChannel(Channel):
    """A connector of a Meta app: one page, Instagram account or WhatsApp number."""

    app_webhook: ClassVar[bool] = True
    app_reply: ClassVar[WebhookReply] = EVENT_RECEIVED

    credentials: MetaAppCredentials

    def verify(self, request: RawRequest) -> None:
        verify_hub_signature(self.credentials.app_secret, request)

    def handshake(self, request: RawRequest) -> WebhookReply:
        return answer_handshake(request, self.credentials.verify_token)

    @property
    def verification_key(self) -> str:
        return app_secret_key(self.credentials.app_secret)

    def setup_plan(self) -> SetupPlan:
        """What connecting this connector asks of Meta (``channels.meta.setup``)."""
        raise NotImplementedError(f"{self.name} has no set-up plan")  # every subclass has one

    async def connect(self, session: aiohttp.ClientSession) -> SetupPlan:
        """Check the token's permissions, then subscribe the app's webhook fields."""
        plan = self.setup_plan()
        await check_token(session, self.credentials, plan)
        await subscribe(session, self.credentials, plan)
        return plan

    async def disconnect(self, session: aiohttp.ClientSession) -> SetupPlan:
        """Unsubscribe the app's webhook from this page, account or number."""
        plan = self.setup_plan()
        await unsubscribe(session, self.credentials, plan)
        return plan

    @classmethod
    def entry_parts(cls, entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
        """The routing id and sub-entry of each part of one entry (``app_webhook``)."""
        return by_account(entry)

    @classmethod
    def split_app_webhook(cls, request: RawRequest) -> list[AppWebhookPart]:
        return split_notification(request, cls.entry_parts)
