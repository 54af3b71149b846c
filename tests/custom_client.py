"""Building signed custom-connector webhooks, as an external system would."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from engine.security.webhook_signature import hmac_signature, signature_headers

CUSTOM_SECRET = "custom-signing-secret-0123456789"


def custom_message(
    chat_id: str, sequence: int, text: str, event_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event_id": event_id or f"{chat_id}-{sequence}",
        "chat_id": chat_id,
        "sequence": sequence,
        "sent_at": 1_776_000_000 + sequence,
        "customer": {"id": f"cust-{chat_id}", "name": f"Customer {chat_id}"},
        "content": {"kind": "text", "text": text},
    }
    message.update(extra)
    return message


def signed_headers(
    body: bytes, secret: str = CUSTOM_SECRET, content_type: str = "application/json"
) -> dict[str, str]:
    """Standard Webhooks v1 headers for ``body``, as the sending system makes them."""
    message_id = "msg_" + secrets.token_hex(8)
    timestamp = int(time.time())
    headers = signature_headers(
        message_id, timestamp, hmac_signature(secret.encode(), message_id, timestamp, body)
    )
    headers["Content-Type"] = content_type
    return headers


def signed_custom_request(
    messages: list[dict[str, Any]], secret: str = CUSTOM_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"messages": messages})
    return body, signed_headers(body, secret)


def custom_connector(
    connector_id: str = "shop", portal: str = "acme", **creds: Any
) -> dict[str, Any]:
    return {
        "id": connector_id,
        "channel": "custom",
        "portal": portal,
        "line": "support",
        "credentials": {"signing_secret": CUSTOM_SECRET, **creds},
    }
