"""What one admin change costs with many portals, without Ray.

    python -m bench.registry_changes --portals 10000 --changes 50

Opens a ``RegistryService`` the way the registry's host does, from a config of ``--portals``
portals over a pool of 8 portal actors, with one channel actor's copy and one portal
actor's part following it. Then puts ``--changes`` new portals, one admin call each, and
after each brings both copies to the new version as their actors do (the update pickled
and unpickled, as a Ray call carries it). Reports the time per change (store, make the
updates, carry them, apply them) and the bytes carried, so the cost of a change can be read
against the size of the registry (docs/architecture.md, "Scale").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

from engine.config import parse_engine_config
from engine.metrics import Counters
from engine.registry import EdgeRegistry, Registry, RegistryUpdate
from engine.registry_service import RegistryService
from engine.security.keys import generate_portal_keypair

POOL_SIZE = 8
FOLLOWED_HOST = "pool-0"


T = TypeVar("T")


def carried(update: T) -> tuple[T, int]:
    """The update as the follower gets it across a Ray call, and its size."""
    blob = pickle.dumps(update, protocol=5)
    copy: T = pickle.loads(blob)
    return copy, len(blob)


async def measure(portals: int, changes: int, workdir: Path) -> dict[str, Any]:
    (workdir / "rules").mkdir()
    _, public_key = generate_portal_keypair()
    entries = [
        {
            "id": f"p{index}",
            "endpoint": f"http://127.0.0.1:9/p{index}",
            "public_key": public_key,
            "license_key": f"license-p{index}-0123456789",
            "lines": [{"id": "support"}],
        }
        for index in range(portals)
    ]
    config = parse_engine_config(
        {
            "data_dir": str(workdir / "data"),
            "rules_dir": str(workdir / "rules"),
            "portals": entries,
            "portal_pool_size": POOL_SIZE,
        },
        "bench",
    )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    service = RegistryService(config, Counters())
    service.open(restarted=False)
    try:
        edge = (await service.edge_after(-1, 0.0)).applied_to(EdgeRegistry(-1))
        part = (await service.hosted_after(FOLLOWED_HOST, -1, 0.0)).applied_to(Registry(-1))
        template = service.registry.portals["p0"]
        carried_bytes = 0
        began = time.perf_counter()
        for index in range(changes):
            await service.put_portal(template.model_copy(update={"id": f"new{index}"}))
            edge_update: RegistryUpdate[EdgeRegistry]
            edge_update, size = carried(await service.edge_after(edge.version, 0.0))
            carried_bytes += size
            edge = edge_update.applied_to(edge)
            part_update: RegistryUpdate[Registry]
            part_update, size = carried(
                await service.hosted_after(FOLLOWED_HOST, part.version, 0.0)
            )
            carried_bytes += size
            part = part_update.applied_to(part)
        elapsed = time.perf_counter() - began
        assert edge == service.registry.edge(), "the channel actor's copy is the registry's"
        assert part.version == service.registry.version
        return {
            "portals": portals,
            "changes": changes,
            "ms_per_change": round(1000 * elapsed / changes, 2),
            "kb_carried_per_change": round(carried_bytes / changes / 1000, 2),
        }
    finally:
        await service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registry_changes", description=__doc__)
    parser.add_argument("--portals", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="olb-registry-") as workdir:
        result = asyncio.run(measure(args.portals, args.changes, Path(workdir)))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
