"""Which portal actor hosts a portal's mailbox.

By default every portal has its own actor. With a pool, portals are spread over a fixed
number of actors by a stable hash, so a portal lands on the same actor (and the same SQLite
file) after every restart as long as the pool size stays the same.
"""

from __future__ import annotations

import zlib


def host_name(portal_id: str, pool_size: int) -> str:
    if pool_size <= 0:
        return f"portal-{portal_id}"
    return f"pool-{zlib.crc32(portal_id.encode()) % pool_size}-of-{pool_size}"


def host_names(portal_ids: list[str], pool_size: int) -> list[str]:
    return sorted({host_name(portal_id, pool_size) for portal_id in portal_ids})
