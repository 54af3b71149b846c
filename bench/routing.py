"""Routing: new-dialog assignments per second and the router's latency.

The router actor is driven exactly as portal actors drive it (``resolve`` with a batch of
conversations), with rules for 1,000 operators over 50 open lines. Only the rules files
change when the full routing rules arrive; this harness stays as it is.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from actors.names import ROUTER
from actors.router import RouterActor
from actors.settings import ActorSettings
from engine.config import parse_engine_config
from engine.routing.router import DialogRequest
from engine.security.keys import generate_portal_keypair


def routing_config(workdir: Path, lines: int, operators: int) -> dict[str, Any]:
    rules_dir = workdir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    per_line = operators // lines
    for line in range(lines):
        rules = {
            "portal": "bench",
            "line": f"line-{line}",
            "operators": [{"id": f"op-{line}-{n}"} for n in range(per_line)],
        }
        (rules_dir / f"bench-line-{line}.yaml").write_text(yaml.safe_dump(rules))
    _, public = generate_portal_keypair()
    return {
        "data_dir": str(workdir / "data"),
        "rules_dir": str(rules_dir),
        "portals": [
            {
                "id": "bench",
                "endpoint": "http://127.0.0.1:9/unused",
                "public_key": public,
                "license_key": "bench-license-key-0123456789",
                "lines": [{"id": f"line-{line}"} for line in range(lines)],
            }
        ],
    }


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(1000 * ordered[-1], 2)}


async def measure_routing(
    lines: int = 50, operators: int = 1000, dialogs: int = 50_000, batch: int = 100
) -> dict[str, Any]:
    """Open ``dialogs`` new dialogs in batches; then single-dialog calls for latency."""
    workdir = Path(tempfile.mkdtemp(prefix="olbench-routing-"))
    config = parse_engine_config(routing_config(workdir, lines, operators), "routing bench")
    settings = ActorSettings(config, b"", time.time(), namespace="bench-routing")
    router = RouterActor.options(name=ROUTER, namespace="bench-routing").remote(settings)  # type: ignore[attr-defined]
    await router.ready.remote()

    def request(n: int) -> DialogRequest:
        return DialogRequest("bench", f"line-{n % lines}", "tg", "telegram", f"chat-{n}", f"c{n}")

    calls: list[float] = []
    started = time.perf_counter()
    for start in range(0, dialogs, batch):
        began = time.perf_counter()
        result = await router.resolve.remote([request(n) for n in range(start, start + batch)])
        calls.append(time.perf_counter() - began)
        assert all(d.is_new and d.operator_id for d in result)
    elapsed = time.perf_counter() - started

    singles: list[float] = []
    for n in range(dialogs, dialogs + 2000):
        began = time.perf_counter()
        await router.resolve.remote([request(n)])
        singles.append(time.perf_counter() - began)

    existing: list[float] = []
    for n in range(0, 2000):
        began = time.perf_counter()
        await router.resolve.remote([request(n)])
        existing.append(time.perf_counter() - began)

    import ray

    ray.kill(router, no_restart=True)
    return {
        "lines": lines,
        "operators": operators,
        "dialogs": dialogs,
        "batch": batch,
        "decisions_per_s": round(dialogs / elapsed),
        "batch_call_ms": percentiles_ms(calls),
        "single_new_dialog_call_ms": percentiles_ms(singles),
        "existing_dialog_call_ms": percentiles_ms(existing),
    }


def main() -> None:
    import json
    import os

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")
    try:
        print(json.dumps(asyncio.run(measure_routing()), indent=2))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
