"""Facebook Messenger (page messaging): ``messaging`` webhooks in, the Send API out.

Wire format, ids and quirks: docs/channels/facebook.md. One connector is one page: it reads
the entries of its page (``page_id``) and answers with the page's access token. Customers
are page-scoped ids (PSIDs); a dialog is one PSID. Replies go out as ``RESPONSE`` inside the
24-hour window, which the engine enforces (``reply_window_s``); a connector configured with
a ``message_tag`` sends every reply as ``MESSAGE_TAG`` with it instead.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import aiohttp
from pydantic import Field

from channels.base import Capabilities, Channel, Credentials, RawRequest, WebhookParse
from channels.meta.credentials import ACCOUNT_ID_PATTERN, MetaAppCredentials
from channels.meta.envelope import read_notification
from channels.meta.messaging import MessagingReader
from channels.meta.send_api import SendApi, message_objects
from channels.meta.signature import verify_hub_signature
from channels.text_split import code_points
from engine.models import DialogTarget, ReplyRequest, Route, SentReceipt

MAX_TEXT_CHARS = 2000
WINDOW_S = 24 * 3600.0
MessageTag = Literal[
    "HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"
]


class FacebookCredentials(MetaAppCredentials):
    """One page of the app."""

    page_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The page's id.")
    page_access_token: str = Field(
        min_length=1,
        repr=False,
        description="A page access token with pages_messaging (sends and set-up calls).",
    )
    message_tag: MessageTag | None = Field(
        default=None,
        description="Send every reply as MESSAGE_TAG with this tag (HUMAN_AGENT needs Meta's "
        "approval); none: RESPONSE.",
    )


class FacebookChannel(Channel):
    """A Facebook page's Messenger inbox."""

    name: ClassVar[str] = "facebook"
    credentials_model: ClassVar[type[Credentials]] = FacebookCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=MAX_TEXT_CHARS)
    reply_window_s: ClassVar[float | None] = WINDOW_S

    credentials: FacebookCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        creds = self.credentials
        self._reader = MessagingReader(route, creds.page_id, creds.app_id, "facebook")
        self._send_api = SendApi(
            f"{creds.graph_api_url}/{creds.page_id}/messages",
            creds.page_access_token,
            "facebook send",
            creds.request_timeout_s,
        )

    def verify(self, request: RawRequest) -> None:
        verify_hub_signature(self.credentials.app_secret, request)

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        notification, _ = read_notification(request.body, "page")
        reading = self._reader.read(notification.entry, received_at)
        ignored = list(reading.ignored)
        ignored.extend("feed" for entry in notification.entry for _ in entry.changes)
        return WebhookParse(messages=tuple(reading.messages), ignored=tuple(ignored))

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        messages = message_objects(self.name, request, MAX_TEXT_CHARS, code_points)
        tag = self.credentials.message_tag
        envelope: dict[str, object] = {"recipient": {"id": target.dialog_key}}
        if tag is None:
            envelope["messaging_type"] = "RESPONSE"
        else:
            envelope.update(messaging_type="MESSAGE_TAG", tag=tag)
        return await self._send_api.send(session, target, request, dict(envelope), messages)
