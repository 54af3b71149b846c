"""How the engine's actors are named and found, in one place."""

from __future__ import annotations

NAMESPACE = "openlines"


def channel_actor(index: int) -> str:
    return f"channel-{index}"


REGISTRY = "registry"
"""The registry as a part of the engine (``/healthz``, ``/metrics``)."""
REGISTRY_HOST_INDEX = 0
REGISTRY_HOST = channel_actor(REGISTRY_HOST_INDEX)
"""The actor that hosts the registry (``engine.registry_host``): channel actor 0, unique and
always there. A Ray worker process costs ~80 MB at rest, so the registry has none of its
own (docs/architecture.md, "Ray's processes")."""
REGISTRY_CARRIER = "registry_call"
"""The host's one method that carries every registry call by name
(``engine.registry_host.REGISTRY_CALLS``)."""
