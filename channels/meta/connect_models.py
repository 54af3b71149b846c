"""What ``openlines connect facebook|instagram|whatsapp`` asks for (docs/channels/facebook.md,
"Connecting"): each field is a command-line option and a key of the admin API's
``settings``. The verify token is generated; the rest goes into the connector's credentials."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from channels.base import ApiBaseUrl
from channels.meta.comment_replies import ReplyMode
from channels.meta.credentials import ACCOUNT_ID_PATTERN, GRAPH_API_URL, MessageTag

Receives = Literal["messages", "comments"]


def _comma_separated(value: object) -> object:
    """``--receive messages,comments`` on the command line; a list from the admin API."""
    return tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else value


ReceiveList = Annotated[
    tuple[Receives, ...],
    BeforeValidator(_comma_separated),
    Field(min_length=1, description="What it reads: messages, comments, or both (a,b)."),
]


class MetaConnect(BaseModel):
    """The app's part, the same for every Meta channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The Meta app's id.")
    app_secret: str = Field(min_length=1, description="The app secret (signs webhooks).")
    graph_api_url: ApiBaseUrl = Field(
        default=GRAPH_API_URL, description="The Graph API root with its version, or a stand-in."
    )


class FacebookConnect(MetaConnect):
    page_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The page's id.")
    page_access_token: str = Field(min_length=1, description="A page access token.")
    receive: ReceiveList = ("messages",)
    comment_replies: ReplyMode = Field(default="public", description="public or private.")
    message_tag: MessageTag | None = Field(
        default=None, description="Send direct replies with this tag (HUMAN_AGENT: 7 days)."
    )


class InstagramConnect(MetaConnect):
    account_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The IG account's id.")
    access_token: str = Field(min_length=1, description="The page's or account's token.")
    page_id: str | None = Field(
        default=None, pattern=ACCOUNT_ID_PATTERN, description="The linked page (Facebook Login)."
    )
    receive: ReceiveList = ("messages",)
    comment_replies: ReplyMode = Field(default="public", description="public or private.")
    message_tag: Literal["HUMAN_AGENT"] | None = Field(
        default=None, description="Send direct replies as HUMAN_AGENT (7 days)."
    )


class WhatsAppConnect(MetaConnect):
    phone_number_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The number's id.")
    waba_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="The business account's id.")
    access_token: str = Field(min_length=1, description="A system-user or business token.")
