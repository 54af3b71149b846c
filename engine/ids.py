"""Identifiers: stable where a retry must map to the same id, random where it must not."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time

_RANDOM = random.Random(secrets.randbits(128))
"""Seeded once from the OS: ids must not collide, not be secret (a portal reaching for
another portal's dialog id gets 404 whatever it guesses), and reading the OS random source
for every id cost the router 5 % of its time."""
os.register_at_fork(after_in_child=lambda: _RANDOM.seed(secrets.randbits(128)))


def inbound_event_id(connector_id: str, channel_event_id: str) -> str:
    """The engine id of a channel event: the same event always gets the same id."""
    digest = hashlib.blake2b(f"{connector_id}\x00{channel_event_id}".encode(), digest_size=16)
    return "evt_" + digest.hexdigest()


def new_id(prefix: str) -> str:
    """A fresh, roughly time-ordered id: 48 bits of milliseconds, then 80 random bits."""
    return f"{prefix}_{int(time.time() * 1000):012x}{_RANDOM.getrandbits(80):020x}"
