"""What every Meta channel shares: the app's signature, the GET handshake and the app-level
webhook (docs/channels/contract.md; docs/channels/facebook.md, "Webhook")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel

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
from channels.setup_calls import new_secret
from engine.errors import NotFoundError


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

    # --- connecting in one step (docs/channels/contract.md, "Connecting")

    @classmethod
    def setup_plan(cls, credentials: MetaAppCredentials) -> SetupPlan:
        """What connecting a connector with these credentials asks of Meta."""
        raise NotFoundError(f"{cls.name} cannot be connected in one step")

    @classmethod
    async def prepare_connect(
        cls, session: aiohttp.ClientSession, given: BaseModel
    ) -> dict[str, object]:
        """The token checked with ``debug_token``; the credentials with a new verify token."""
        fields = {**given.model_dump(mode="json"), "verify_token": new_secret()}
        credentials = cls.credentials_model.model_validate(fields)
        assert isinstance(credentials, MetaAppCredentials)
        await check_token(session, credentials, cls.setup_plan(credentials))
        return fields

    async def subscribe(
        self, session: aiohttp.ClientSession, webhook_url: str
    ) -> dict[str, object]:
        plan = self.setup_plan(self.credentials)
        await subscribe(session, self.credentials, plan, webhook_url)
        return {}

    async def unsubscribe(self, session: aiohttp.ClientSession, webhook_url: str) -> None:
        await unsubscribe(session, self.credentials, self.setup_plan(self.credentials))

    @classmethod
    def entry_parts(cls, entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
        """The routing id and sub-entry of each part of one entry (``app_webhook``)."""
        return by_account(entry)

    @classmethod
    def split_app_webhook(cls, request: RawRequest) -> list[AppWebhookPart]:
        return split_notification(request, cls.entry_parts)
