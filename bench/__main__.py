"""``python -m bench`` (``make bench``): every benchmark scenario, results and plot.

python -m bench                 # the full run (about half an hour on 2 cores)
python -m bench --quick         # smaller sizes, a few minutes
python -m bench --only routing floor
python -m bench --quick --only floor closed_loop --profile /tmp/olb-profiles
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any

from tqdm import tqdm

from bench import report
from bench.scenarios import QUICK, SCENARIOS, Sizes, passed

NEEDS_RAY = {"naive_baseline"}
"""Scenarios that start Ray in this process (the others run the engine as a subprocess)."""


async def run(names: list[str], sizes: Sizes) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": report.machine(), "sizes": sizes.__dict__}
    progress = tqdm(names, desc="bench", unit="scenario")
    for name in progress:
        progress.set_postfix_str(name)
        began = time.perf_counter()
        results[name] = await SCENARIOS[name](sizes)
        results[name]["scenario_seconds"] = round(time.perf_counter() - began, 1)
        tqdm.write(f"{name}: {json.dumps(results[name])[:400]}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--no-readme", action="store_true", help="leave README alone")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="closed_loop: py-spy profiles of the actors in a separate pass, written to DIR",
    )
    args = parser.parse_args(argv)
    names = args.only or list(SCENARIOS)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    uses_ray = any(name in NEEDS_RAY for name in names)
    if uses_ray:
        import ray

        ray.init(
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level="ERROR",
            _temp_dir=tempfile.mkdtemp(prefix="olb-"),
            log_to_driver=False,
        )
    try:
        sizes = dataclasses.replace(QUICK if args.quick else Sizes(), profile_dir=args.profile)
        results = asyncio.run(run(names, sizes))
    finally:
        if uses_ray:
            ray.shutdown()
    full = not args.quick and args.only is None
    report.add_ratios(results)
    path = report.save(results, full)
    report.plot(results, path.with_suffix(".png"))
    if full and not args.no_readme:
        report.update_readme(results)
    print(report.table(results))
    print(f"results: {path} and {path.with_suffix('.png')}")
    failures = passed(results)
    if failures:
        print(f"FAILED: {', '.join(failures)} (see scenarios.passed)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
