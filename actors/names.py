"""How the engine's actors are named and found, in one place."""

from __future__ import annotations

NAMESPACE = "openlines"
REGISTRY = "registry"


def channel_actor(index: int) -> str:
    return f"channel-{index}"
