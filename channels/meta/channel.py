"""What every Meta channel shares: the app's signature, the GET handshake and the app-level
webhook (docs/channels/contract.md; docs/channels/facebook.md, "Webhook")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from channels.base import AppWebhookPart, Channel, RawRequest, WebhookReply
from channels.meta.app_webhook import (
    EVENT_RECEIVED,
    answer_handshake,
    app_secret_key,
    by_account,
    split_notification,
)
from channels.meta.credentials import MetaAppCredentials
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

    @classmethod
    def entry_parts(cls, entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
        """The routing id and sub-entry of each part of one entry (``app_webhook``)."""
        return by_account(entry)

    @classmethod
    def split_app_webhook(cls, request: RawRequest) -> list[AppWebhookPart]:
        return split_notification(request, cls.entry_parts)
