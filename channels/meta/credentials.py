"""What every Meta connector is configured with: the app's secrets and the Graph API root."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from channels.base import ApiBaseUrl, Credentials

GRAPH_API_URL = "https://graph.facebook.com/v21.0"
ACCOUNT_ID_PATTERN = r"^[0-9]{1,30}$"
MessageTag = Literal[
    "HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"
]
"""Messenger's message tags (docs/channels/facebook.md, "Windows"); Instagram takes only
``HUMAN_AGENT``."""


class MetaAppCredentials(Credentials):
    """The app's part: the secret that signs webhooks, the token the GET handshake proves."""

    app_secret: str = Field(
        min_length=1,
        repr=False,
        description="The app secret (App Dashboard, Settings, Basic): the HMAC key of "
        "X-Hub-Signature-256 on every webhook.",
    )
    verify_token: str = Field(
        min_length=1,
        repr=False,
        description="The verify token given to Meta with the callback URL; the GET "
        "handshake's hub.verify_token must equal it.",
    )
    app_id: str | None = Field(
        default=None,
        pattern=ACCOUNT_ID_PATTERN,
        description="The app's id: an echo carrying it is the engine's own send.",
    )
    graph_api_url: ApiBaseUrl = Field(
        default=GRAPH_API_URL,
        description="The Graph API root with its version, or a test stand-in.",
    )
    request_timeout_s: float = Field(
        default=30, gt=0, description="Total time allowed for one Graph API call, in seconds."
    )
