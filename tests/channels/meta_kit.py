"""What every Meta channel test builds requests with: a notification signed like Meta's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from channels.base import Channel, RawRequest, WebhookParse
from tests.channels.conftest import verify_and_parse, webhook_post
from tests.standins.meta_api import recorded, signed_headers


def signed(channel: str, body: bytes) -> RawRequest:
    """``body`` posted to ``channel``'s webhook with the app's ``X-Hub-Signature-256``."""
    headers = {name.lower(): value for name, value in signed_headers(body).items()}
    return webhook_post(channel, body, headers=headers)


def parse_with(channel: Channel, name_or_body: str | bytes) -> WebhookParse:
    """Verify and parse a recorded notification (by name, without ``.json``) or a body."""
    body = recorded(f"{name_or_body}.json") if isinstance(name_or_body, str) else name_or_body
    return verify_and_parse(channel, signed(channel.name, body))


def rows(items: Iterable[object], *fields: str) -> list[tuple[Any, ...]]:
    """The named fields of each message or event, for comparing with a table row."""
    return [tuple(getattr(item, name) for name in fields) for item in items]
