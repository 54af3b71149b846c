"""Facebook pages: Messenger (``messaging``) and page comments (``feed``), in and out.

Wire format, ids and quirks: docs/channels/facebook.md. One connector is one page and reads
what its ``receive`` names: Messenger conversations (dialog = a page-scoped id, PSID),
comment threads (dialog = ``comment:<top-level comment id>``), or both. Meta posts both to
the app's one ``page`` callback; the app-level webhook routes messaging by the page id and
comments by ``<page id>/comments`` (docs/channels/contract.md), so a page's comments may be
a connector of their own, on another line.

Messenger replies go out as ``RESPONSE`` inside the 24-hour window, which the engine
enforces (``reply_window_for``); a connector with a ``message_tag`` sends every reply as
``MESSAGE_TAG`` with it (``HUMAN_AGENT``: 7 days). Comment replies are public (no window) or
private (``comment_replies``: one per comment within 7 days).
"""

from __future__ import annotations

from typing import ClassVar

import aiohttp
from pydantic import BaseModel, Field

from channels.base import Capabilities, Credentials
from channels.meta.account_channel import AccountChannel, AccountCredentials
from channels.meta.comment_replies import CommentReplies
from channels.meta.connect_models import FacebookConnect
from channels.meta.credentials import ACCOUNT_ID_PATTERN, MetaAppCredentials
from channels.meta.facebook_comments import FeedReader
from channels.meta.messaging import MessagingReader
from channels.meta.send_api import SendApi, message_objects
from channels.meta.setup import SetupPlan
from channels.text_split import code_points
from engine.delivery.send_rates import Rate, SendRate
from engine.models import DialogTarget, ReplyRequest, Route, SentReceipt

MAX_TEXT_CHARS = 2000
MAX_COMMENT_CHARS = 8000
COMMENT_CAPABILITIES = Capabilities(
    max_text_chars=MAX_COMMENT_CHARS,
    files=False,
    max_caption_chars=MAX_COMMENT_CHARS,
    buttons=False,
)
WINDOW_S = 24 * 3600.0
MESSAGING_FIELDS = [
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "message_reactions",
    "message_edits",
    "messaging_postbacks",
    "messaging_optins",
    "standby",
]


class FacebookCredentials(AccountCredentials):
    """One page of the app."""

    page_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The page's id.")
    page_access_token: str = Field(
        min_length=1,
        repr=False,
        description="A page access token: pages_messaging for Messenger, "
        "pages_manage_engagement and pages_read_user_content for comments.",
    )


class FacebookChannel(AccountChannel):
    """A Facebook page: its Messenger inbox and/or its comments."""

    name: ClassVar[str] = "facebook"
    credentials_model: ClassVar[type[Credentials]] = FacebookCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_CHARS, max_caption_chars=0
    )
    reply_window_s: ClassVar[float | None] = WINDOW_S
    notification_object: ClassVar[str] = "page"
    # Send API: 300 calls a second per page for text (docs/channels/facebook.md, "Send API").
    send_rate: ClassVar[SendRate] = SendRate(per_connector=Rate(per_s=300, burst=300))
    connect_model: ClassVar[type[BaseModel] | None] = FacebookConnect

    credentials: FacebookCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        creds = self.credentials
        self.messaging_reader = MessagingReader(route, creds.page_id, creds.app_id)
        self.comment_reader = FeedReader(route, creds.page_id)
        self._send_api = SendApi(
            f"{creds.graph_api_url}/{creds.page_id}/messages",
            creds.page_access_token,
            "facebook send",
            creds.request_timeout_s,
        )
        self.comment_replies = CommentReplies(
            graph_api_url=creds.graph_api_url,
            token=creds.page_access_token,
            edge="comments",
            capabilities=COMMENT_CAPABILITIES,
            send_api=self._send_api,
            max_private_text=MAX_TEXT_CHARS,
            timeout_s=creds.request_timeout_s,
            what="facebook",
        )

    @property
    def account_id(self) -> str:
        return self.credentials.page_id

    @classmethod
    def setup_plan(cls, credentials: MetaAppCredentials) -> SetupPlan:
        creds = credentials
        assert isinstance(creds, FacebookCredentials)
        fields: list[str] = []
        scopes = ["pages_manage_metadata"]
        if "messages" in creds.receive:
            fields += MESSAGING_FIELDS
            scopes.append("pages_messaging")
        if "comments" in creds.receive:
            fields.append("feed")
            scopes += ["pages_manage_engagement", "pages_read_user_content"]
            if creds.comment_replies == "private":
                scopes.append("pages_messaging")
        return SetupPlan(
            app_object="page",
            app_fields=tuple(fields),
            node=creds.page_id,
            token=creds.page_access_token,
            node_fields=tuple(fields),
            scopes=tuple(dict.fromkeys(scopes)),
        )

    async def send_direct(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt:
        messages = message_objects(self.name, request, self.capabilities, code_points)
        envelope = self.direct_envelope(target)
        return await self._send_api.send(session, target, request, envelope, messages)
