"""Identifiers: stable where a retry must map to the same id, random where it must not."""

from __future__ import annotations

import hashlib
import secrets
import time


def inbound_event_id(connector_id: str, channel_event_id: str) -> str:
    """The engine id of a channel event: the same event always gets the same id."""
    digest = hashlib.blake2b(f"{connector_id}\x00{channel_event_id}".encode(), digest_size=16)
    return "evt_" + digest.hexdigest()


def new_id(prefix: str) -> str:
    """A fresh, roughly time-ordered id: 48 bits of milliseconds, then 80 random bits."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"
