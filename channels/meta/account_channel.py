"""What Facebook pages and Instagram accounts share: one connector reads the account's direct
messages, its comments, or both (``receive``), and answers each dialog the way it came.

Meta posts both kinds to the app's one callback per object; the app-level webhook routes
messaging by the account id and comments by ``<account id>/comments``
(docs/channels/facebook.md, "Webhook"), so the comments can be a connector of their own. A
dialog whose key is ``comment:<id>`` is a comment thread, answered by a comment reply
(public or private, ``comment_replies``); any other is a direct conversation.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal, Protocol

import aiohttp
from pydantic import Field

from channels.base import RawRequest, WebhookParse
from channels.meta.app_webhook import comments_routing_id
from channels.meta.channel import MetaChannel
from channels.meta.comment_replies import CommentReplies, ReplyMode
from channels.meta.comments import comment_address, thread_of
from channels.meta.credentials import MessageTag, MetaAppCredentials
from channels.meta.envelope import MetaEntry, read_notification
from channels.meta.messaging import EntryReading, MessagingReader
from engine.models import DialogTarget, ReplyRequest, SentReceipt
from engine.routing.windows import DAY_S, ReplyWindow

Receives = Literal["messages", "comments"]
MESSAGING_WINDOW = ReplyWindow(DAY_S, "Meta's 24-hour messaging window")
HUMAN_AGENT_WINDOW = ReplyWindow(7 * DAY_S, "the HUMAN_AGENT tag's 7 days")
PRIVATE_REPLY_WINDOW = ReplyWindow(
    7 * DAY_S, "a private reply to a comment (one per comment, within 7 days)", one_reply=True
)


class AccountCredentials(MetaAppCredentials):
    """The part of a page's or an Instagram account's credentials about what it reads."""

    receive: tuple[Receives, ...] = Field(
        default=("messages",),
        min_length=1,
        description="What this connector reads: direct messages, comments, or both.",
    )
    comment_replies: ReplyMode = Field(
        default="public",
        description="Answer a comment publicly, or privately in direct (one per comment).",
    )
    message_tag: MessageTag | None = Field(
        default=None,
        description="Send every direct reply as MESSAGE_TAG with this tag (HUMAN_AGENT, "
        "needs Meta's approval: replies up to 7 days after the customer's last message); "
        "none: RESPONSE, within 24 hours.",
    )


class CommentReader(Protocol):
    def read(self, entries: list[MetaEntry], received_at: float, into: EntryReading) -> None:
        """Append the comments of ``entries`` (the account's own) to ``into``."""


class AccountChannel(MetaChannel):
    """A page or an Instagram account (``notification_object``)."""

    notification_object: ClassVar[str]
    credentials: AccountCredentials
    messaging_reader: MessagingReader
    comment_reader: CommentReader
    comment_replies: CommentReplies

    @property
    @abstractmethod
    def account_id(self) -> str:
        """The page or Instagram account: the ``entry.id`` of its notifications."""

    @abstractmethod
    async def send_direct(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt:
        """A reply in a direct conversation (Messenger, Instagram direct)."""

    def reply_window_for(self, dialog_key: str) -> ReplyWindow | None:
        """Per dialog (docs/channels/facebook.md, "Windows"): a comment thread has none
        for public replies, and one private reply per comment within 7 days; a direct
        conversation 24 hours, 7 under ``HUMAN_AGENT``, none under another tag (Meta takes
        those at any time)."""
        if thread_of(dialog_key) is not None:
            private = self.credentials.comment_replies == "private"
            return PRIVATE_REPLY_WINDOW if private else None
        tag = self.credentials.message_tag
        if tag is None:
            return MESSAGING_WINDOW
        return HUMAN_AGENT_WINDOW if tag == "HUMAN_AGENT" else None

    def direct_envelope(self, target: DialogTarget) -> dict[str, object]:
        """A direct reply's recipient (the dialog's ``recipient_id``, the PSID or IGSID; its
        key for a dialog stored before addresses were kept) and ``messaging_type``:
        ``RESPONSE``, or ``MESSAGE_TAG`` with the connector's tag."""
        recipient = target.address.get("recipient_id") or target.dialog_key
        envelope: dict[str, object] = {"recipient": {"id": recipient}}
        tag = self.credentials.message_tag
        if tag is None:
            envelope["messaging_type"] = "RESPONSE"
        else:
            envelope.update(messaging_type="MESSAGE_TAG", tag=tag)
        return envelope

    @property
    def routing_ids(self) -> frozenset[str]:
        ids = {"messages": self.account_id, "comments": comments_routing_id(self.account_id)}
        return frozenset(ids[kind] for kind in self.credentials.receive)

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        notification, _ = read_notification(request.body, self.notification_object)
        receive = self.credentials.receive
        reading = EntryReading()
        if "messages" in receive:
            reading = self.messaging_reader.read(notification.entry, received_at)
        else:
            reading.ignored.extend("messaging" for e in notification.entry if e.messaging)
        ours = [e for e in notification.entry if e.id == self.account_id]
        if "comments" in receive:
            self.comment_reader.read(ours, received_at, reading)
        else:
            reading.ignored.extend("comments" for e in ours for _ in e.changes)
        return WebhookParse(
            messages=tuple(reading.messages),
            events=tuple(reading.events),
            ignored=tuple(reading.ignored),
        )

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        if thread_of(target.dialog_key) is None:
            return await self.send_direct(session, target, request)
        mode = self.credentials.comment_replies
        comment = comment_address(target, request, mode)
        return await self.comment_replies.send(session, target, request, comment, mode)
