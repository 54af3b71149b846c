"""Instagram: direct messages (``messaging``) and comments (``comments``), in and out.

Wire format, ids, limits and quirks: docs/channels/instagram.md. One connector is one
Instagram professional account (``account_id``) and reads what its ``receive`` names: direct
conversations (dialog = the Instagram-scoped id, IGSID) and/or comment threads (dialog =
``comment:<top-level comment id>``); the app-level webhook routes them by the account id and
``<account id>/comments`` (docs/channels/contract.md).

Both login flavours are served: with Facebook Login, ``graph_api_url`` is
graph.facebook.com and direct replies go to the linked page (``page_id``); with Instagram
Login, graph.instagram.com and the account itself. Direct replies are ``RESPONSE`` inside the
24-hour window the engine enforces (``reply_window_for``; ``HUMAN_AGENT``: 7 days).
Comment replies are public (``POST /{comment}/replies``, no window) or one private reply per
comment within 7 days. Meta's reply limits (750
private replies an hour per account) answer with its throttling codes: the reply is kept
and retried after the time Meta gives (the engine's durable reply queue), never dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

import aiohttp
from pydantic import BaseModel, Field

from channels.base import Capabilities, Credentials, PollResult, WebhookParse
from channels.meta.account_channel import AccountChannel, AccountCredentials
from channels.meta.comment_replies import CommentReplies
from channels.meta.comments import thread_of
from channels.meta.connect_models import InstagramConnect
from channels.meta.credentials import ACCOUNT_ID_PATTERN, MetaAppCredentials
from channels.meta.instagram_comments import InstagramCommentReader
from channels.meta.instagram_polling import InstagramCommentPoller
from channels.meta.messaging import MessagingReader
from channels.meta.send_api import SendApi, message_objects
from channels.meta.setup import SetupPlan
from channels.text_split import utf8_bytes
from engine.delivery.send_rates import KeptRate, Rate, SendRate
from engine.models import DialogTarget, ReplyRequest, Route, SentReceipt

MAX_TEXT_BYTES = 1000
MAX_COMMENT_CHARS = 2200
COMMENT_CAPABILITIES = Capabilities(
    max_text_chars=MAX_COMMENT_CHARS, images=False, files=False, buttons=False
)
WINDOW_S = 24 * 3600.0
PRIVATE_REPLIES = KeptRate(
    name="private_replies",
    # 750 calls an hour per account (docs/channels/instagram.md, "Limits"). A bucket lets
    # out at most its burst plus an hour's refill in any hour: 50 + 700 = 750.
    rate=Rate(per_s=700 / 3600, burst=50),
    limit="Instagram: 750 private replies to comments an hour per account",
)


class InstagramCredentials(AccountCredentials):
    """One Instagram professional account of the app."""

    account_id: str = Field(
        pattern=ACCOUNT_ID_PATTERN, description="The Instagram professional account's id."
    )
    access_token: str = Field(
        min_length=1,
        repr=False,
        description="The linked page's token (Facebook Login) or the account's Instagram "
        "user token (Instagram Login), with instagram_manage_messages / _comments.",
    )
    page_id: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="The linked Facebook page (Facebook Login): direct replies are posted "
        "to /{page_id}/messages; none: to /{account_id}/messages (Instagram Login).",
    )
    comment_poll_interval_s: float | None = Field(
        default=900,
        ge=60,
        description="Poll the account's comments this often, in seconds (a connector that "
        "reads comments); null: webhooks only.",
    )
    poll_media_limit: int = Field(
        default=25, ge=1, le=100, description="How many recent media a comment poll reads."
    )
    message_tag: Literal["HUMAN_AGENT"] | None = Field(
        default=None,
        description="Send every direct reply as MESSAGE_TAG HUMAN_AGENT (needs Meta's "
        "approval): replies up to 7 days after the customer's last message; none: RESPONSE, "
        "within 24 hours.",
    )


class InstagramChannel(AccountChannel):
    """An Instagram professional account: its direct messages and/or its comments."""

    name: ClassVar[str] = "instagram"
    credentials_model: ClassVar[type[Credentials]] = InstagramCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_BYTES, max_caption_chars=0
    )
    reply_window_s: ClassVar[float | None] = WINDOW_S
    notification_object: ClassVar[str] = "instagram"
    # Send API: 300 calls a second per account for text; private replies to comments also
    # 750 an hour, kept across restarts (``send_rate_for``; docs/channels/instagram.md).
    send_rate: ClassVar[SendRate] = SendRate(per_connector=Rate(per_s=300, burst=300))
    connect_model: ClassVar[type[BaseModel] | None] = InstagramConnect

    credentials: InstagramCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        creds = self.credentials
        self.messaging_reader = MessagingReader(route, creds.account_id, creds.app_id)
        self.comment_reader = InstagramCommentReader(route, creds.account_id)
        sender = creds.page_id or creds.account_id
        self._send_api = SendApi(
            f"{creds.graph_api_url}/{sender}/messages",
            creds.access_token,
            "instagram send",
            creds.request_timeout_s,
        )
        self._poller = InstagramCommentPoller(
            self.comment_reader,
            graph_api_url=creds.graph_api_url,
            account_id=creds.account_id,
            token=creds.access_token,
            media_limit=creds.poll_media_limit,
            timeout_s=creds.request_timeout_s,
        )
        self.comment_replies = CommentReplies(
            graph_api_url=creds.graph_api_url,
            token=creds.access_token,
            edge="replies",
            capabilities=COMMENT_CAPABILITIES,
            send_api=self._send_api,
            max_private_text=MAX_TEXT_BYTES,
            private_measure=utf8_bytes,
            timeout_s=creds.request_timeout_s,
            what="instagram",
        )

    @property
    def account_id(self) -> str:
        return self.credentials.account_id

    def send_rate_for(self, target: DialogTarget) -> SendRate:
        """A reply in a comment thread that goes as a private reply counts against the 750
        an hour too; direct messages and public replies only against the Send API's rate."""
        private = self.credentials.comment_replies == "private"
        if private and thread_of(target.dialog_key) is not None:
            return replace(self.send_rate, kept=(PRIVATE_REPLIES,))
        return self.send_rate

    @property
    def poll_interval_s(self) -> float | None:
        """A connector that reads comments polls them too (docs/channels/instagram.md,
        "Polling"), unless ``comment_poll_interval_s`` is null."""
        if "comments" not in self.credentials.receive:
            return None
        return self.credentials.comment_poll_interval_s

    async def poll(
        self, session: aiohttp.ClientSession, cursor: str | None, received_at: float
    ) -> PollResult:
        """The comments that arrived after ``cursor`` (channels/meta/instagram_polling.py)."""
        polled = await self._poller.poll(session, cursor, received_at)
        reading = polled.reading
        parsed = WebhookParse(messages=tuple(reading.messages), ignored=tuple(reading.ignored))
        return PollResult(parsed=parsed, cursor=polled.cursor)

    @classmethod
    def setup_plan(cls, credentials: MetaAppCredentials) -> SetupPlan:
        """Facebook Login subscribes the linked page with the pages_* and instagram_*
        permissions; Instagram Login the account itself with instagram_business_*."""
        creds = credentials
        assert isinstance(creds, InstagramCredentials)
        facebook_login = creds.page_id is not None
        prefix = "instagram_manage_" if facebook_login else "instagram_business_manage_"
        scopes = ["instagram_basic" if facebook_login else "instagram_business_basic"]
        fields: list[str] = []
        if "messages" in creds.receive:
            fields += [
                "messages",
                "messaging_postbacks",
                "messaging_seen",
                "message_reactions",
                "standby",
            ]
            scopes.append(f"{prefix}messages")
        if "comments" in creds.receive:
            fields += ["comments", "live_comments"]
            scopes.append(f"{prefix}comments")
            if creds.comment_replies == "private":
                scopes.append(f"{prefix}messages")
        if facebook_login:
            scopes.append("pages_manage_metadata")
        node = creds.page_id or creds.account_id
        return SetupPlan(
            app_object="instagram",
            app_fields=tuple(fields),
            node=node,
            token=creds.access_token,
            node_fields=tuple(fields),
            scopes=tuple(dict.fromkeys(scopes)),
        )

    async def send_direct(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt:
        messages = message_objects(self.name, request, self.capabilities, utf8_bytes)
        envelope = self.direct_envelope(target)
        return await self._send_api.send(session, target, request, envelope, messages)
