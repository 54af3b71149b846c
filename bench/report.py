"""Results of a benchmark run: JSON under bench/results/, a PNG plot, README's table."""

from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_START = "<!-- bench:start -->"
TABLE_END = "<!-- bench:end -->"


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def save(results: dict[str, Any], full: bool) -> Path:
    """Write the run; only a full run replaces ``latest.json`` (what README shows)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, indent=2)
    kind = "run" if full else "partial"
    path = RESULTS / f"{kind}-{stamp}.json"
    path.write_text(text)
    if full:
        path = RESULTS / "latest.json"
        path.write_text(text)
    return path


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    floor = results.get("floor", {}).get("requests_per_s")
    throughput = results.get("throughput_and_latency")
    naive = results.get("naive_baseline", {}).get("load", {}).get("requests_per_s")
    bars = {"floor (bare aiohttp)": floor, "engine": None, "naive baseline": naive}
    if throughput:
        bars["engine"] = throughput["maximum"]["load"]["requests_per_s"]
    names = [name for name, value in bars.items() if value]
    left.bar(
        names, [bars[name] for name in names], color=["#999", "#1f77b4", "#d62728"][: len(names)]
    )
    left.set_ylabel("webhooks/s (1 message each)")
    left.set_title("Throughput, same load generator")

    if throughput:
        rows = throughput["at_rates"]
        offered = [row["achieved_per_s"] for row in rows]
        for key in ("p50", "p95", "p99"):
            middle.plot(offered, [row["latency_ms"][key] for row in rows], marker="o", label=key)
        middle.set_xlabel("messages/s")
        middle.set_ylabel("webhook-to-portal latency, ms")
        middle.set_title("Latency against load")
        middle.legend()

    scale = results.get("scale_in_portals")
    if scale:
        pooled = scale["pooled"]
        portals = [row["portals"] for row in pooled]
        right.plot(
            portals,
            [row["idle_engine_mb"] for row in pooled],
            marker="o",
            label=f"pooled ({scale['pool_size']} portal actors)",
        )
        actors = scale["actor_per_portal"]
        if actors:
            right.plot(
                [row["portals"] for row in actors],
                [row["portal_actors_mb"] for row in actors],
                marker="s",
                label="one actor per portal (portal actors only)",
            )
        right.set_xscale("log")
        right.set_xlabel("portals")
        right.set_ylabel("engine memory (USS), MB")
        right.set_title("Memory against portals")
        right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = round(value, 1)
    if isinstance(value, int) and abs(value) >= 1000:
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def table(results: dict[str, Any]) -> str:
    lines = ["| figure | value | target |", "|---|---|---|"]
    floor = results.get("floor", {})
    throughput = results.get("throughput_and_latency")
    if floor:
        lines.append(
            f"| floor: bare aiohttp, same load generator | "
            f"{_fmt(floor['requests_per_s'])} req/s (load generator CPU "
            f"{_fmt(floor.get('cpu_percent'))} %) | — |"
        )
    if throughput:
        maximum = throughput["maximum"]
        rate = maximum["load"]["requests_per_s"]
        ratio = rate / floor["requests_per_s"] if floor else None
        lines.append(
            f"| end-to-end durable, Telegram+VK+Viber, 10 portals | {_fmt(rate)} msg/s "
            f"({_fmt(100 * ratio if ratio else None)} % of floor) | ≥ 50 % of floor |"
        )
        half = next((r for r in throughput["at_rates"] if r["fraction_of_max"] == 0.5), None)
        for row in throughput["at_rates"]:
            lat = row["latency_ms"]
            lines.append(
                f"| latency at {int(100 * row['fraction_of_max'])} % "
                f"({_fmt(row['achieved_per_s'])} msg/s): p50 / p95 / p99 / max | "
                f"{lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']} ms | "
                f"{'p99 ≤ 100 ms' if row is half else '—'} |"
            )
    scale = results.get("scale_in_portals")
    if scale:
        for row in scale["pooled"]:
            lines.append(
                f"| {_fmt(row['portals'])} portals (pool of {scale['pool_size']}): "
                f"throughput, p99, idle memory/portal | {_fmt(row['requests_per_s'])} "
                f"msg/s ({_fmt(row.get('throughput_vs_10_portals'))}× of 10 portals), "
                f"p99 {row['latency_ms']['p99']} ms, "
                f"{_fmt(row.get('idle_kb_per_portal'))} KB | "
                f"{'≥ 80 % of 10 portals, ≤ 20 KB' if row['portals'] == 10_000 else '—'} |"
            )
        for row in scale["actor_per_portal"]:
            lines.append(
                f"| {row['portals']} portals, one actor each: start, memory/portal | "
                f"{row['start_s']} s, {row['mb_per_portal']} MB | — |"
            )
    outage = results.get("outage_and_drain")
    if outage:
        before = outage["other_portals_latency_ms_before"]
        during = outage["other_portals_latency_ms_during"]
        lines.append(
            f"| drain of {_fmt(outage['backlog_messages'])} messages to one portal | "
            f"{_fmt(outage['drain_per_s'])} msg/s, in order: "
            f"{'yes' if outage['drain_check']['order_violations'] == 0 else 'NO'} | "
            f"≥ 20,000 msg/s |"
        )
        lines.append(
            f"| other portals' p99 before / during the outage | {before['p99']} / "
            f"{during['p99']} ms | unchanged |"
        )
    routing = results.get("routing")
    if routing:
        lines.append(
            f"| routing: new dialogs, {routing['operators']} operators over "
            f"{routing['lines']} lines | {_fmt(routing['decisions_per_s'])}/s, "
            f"call p99 {routing['batch_call_ms']['p99']} ms | ≥ 5,000/s |"
        )
    naive = results.get("naive_baseline")
    if naive:
        lines.append(
            f"| naive baseline (one Ray call + one commit per message) | "
            f"{_fmt(naive['load']['requests_per_s'])} msg/s | — |"
        )
    info = results.get("machine", {})
    lines.append("")
    lines.append(
        f"Machine: {info.get('cpus')} cores, {info.get('memory_gb')} GiB, "
        f"{info.get('processor')}, Python {info.get('python')}, {info.get('date')}."
    )
    return "\n".join(lines)


def update_readme(results: dict[str, Any]) -> None:
    text = README.read_text()
    block = f"{TABLE_START}\n{table(results)}\n{TABLE_END}"
    if TABLE_START in text:
        text = re.sub(
            re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), block, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)
