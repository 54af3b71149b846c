"""Meta's app-level webhook: the GET handshake, and one POST split into each connector's part.

An app has one callback URL per object (``page``, ``instagram``,
``whatsapp_business_account``), and Meta batches entries of all its pages, accounts and
numbers in one POST (docs/channels/facebook.md, "Webhook"). The engine routes each entry by
the id inside (docs/channels/contract.md, "One webhook for many connectors"):

* messaging entries (``messaging``, ``standby``) by the entry's id: a page or an Instagram
  account, routing id ``<id>``;
* comment changes (``feed``, ``comments``, ``live_comments``, ``mentions``) by the entry's id
  as ``<id>/comments``, so a page's comments can be its own connector (another line) beside
  its Messenger inbox;
* WhatsApp changes by ``value.metadata.phone_number_id``.

An entry carrying several kinds is split into one entry per kind. Each part is the
provider's own envelope holding only its entries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from channels.base import AppWebhookPart, RawRequest, WebhookReply
from channels.webhook_body import decode_json
from engine.errors import BadRequestError, ForbiddenError, ValidationFailedError

COMMENTS_SUFFIX = "/comments"
COMMENT_FIELDS = frozenset({"feed", "comments", "live_comments", "mentions"})
EVENT_RECEIVED = WebhookReply(body=b"EVENT_RECEIVED")
"""What Meta is answered once everything is stored (any 200 will do; this is Meta's example)."""

EntryRouting = Callable[[dict[str, Any]], Iterable[tuple[str, dict[str, Any]]]]
"""The routing id and sub-entry of each part of one entry."""


def comments_routing_id(account_id: str) -> str:
    return f"{account_id}{COMMENTS_SUFFIX}"


def answer_handshake(request: RawRequest, verify_token: str) -> WebhookReply:
    """Meta's subscription check: 200 with the raw ``hub.challenge`` when ``hub.mode`` is
    ``subscribe`` and ``hub.verify_token`` is ours (compared in constant time)."""
    query = request.query
    if query.get("hub.mode") != "subscribe" or not query.get("hub.challenge"):
        raise BadRequestError("not a subscription handshake: hub.mode=subscribe and hub.challenge")
    presented = query.get("hub.verify_token", "").encode("utf-8", "replace")
    if not hmac.compare_digest(presented, verify_token.encode()):
        raise ForbiddenError("hub.verify_token is not this connector's verify token")
    return WebhookReply(body=query["hub.challenge"].encode())


def app_secret_key(app_secret: str) -> str:
    """Connectors of one app share this: the engine verifies their common body once."""
    return "meta-app:" + hashlib.sha256(app_secret.encode()).hexdigest()


def by_account(entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Pages and Instagram accounts: messaging by the id, comment changes by ``id/comments``."""
    account = _entry_id(entry)
    messaging = {key: entry[key] for key in ("messaging", "standby") if entry.get(key)}
    if messaging:
        yield account, {"id": entry.get("id"), "time": entry.get("time"), **messaging}
    changes = entry.get("changes")
    if isinstance(changes, list) and changes:
        yield (
            comments_routing_id(account),
            {
                "id": entry.get("id"),
                "time": entry.get("time"),
                "changes": changes,
            },
        )


def by_phone_number(entry: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """WhatsApp: each change by the ``phone_number_id`` it is about."""
    changes = entry.get("changes")
    for change in changes if isinstance(changes, list) else ():
        value = change.get("value") if isinstance(change, dict) else None
        metadata = value.get("metadata") if isinstance(value, dict) else None
        number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
        routing_id = str(number) if number is not None else f"waba:{_entry_id(entry)}"
        yield routing_id, {"id": entry.get("id"), "time": entry.get("time"), "changes": [change]}


def split_notification(request: RawRequest, routing: EntryRouting) -> list[AppWebhookPart]:
    """The body's entries grouped by routing id, in the order they came."""
    data = decode_json(request.body)
    entries = data.get("entry") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValidationFailedError("notification: expected {'object': ..., 'entry': [{...}]}")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for routing_id, part in routing(entry):
            grouped.setdefault(routing_id, []).append(part)
    return [
        AppWebhookPart(
            routing_id,
            RawRequest(
                request.method,
                request.path,
                request.headers,
                request.query,
                orjson.dumps({"object": data["object"], "entry": part_entries}),
            ),
        )
        for routing_id, part_entries in grouped.items()
    ]


def _entry_id(entry: dict[str, Any]) -> str:
    value = entry.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationFailedError("notification: an entry without an id")
    return str(value)
