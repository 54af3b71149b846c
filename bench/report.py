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

    figure, (left, middle, right, closed_axes) = plt.subplots(1, 4, figsize=(20, 4.5))
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
    closed = results.get("closed_loop")
    if closed:
        _plot_closed_loop(closed_axes, closed)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_closed_loop(axes: Any, closed: dict[str, Any]) -> None:
    rows = {name: row for name, row in closed["systems"].items() if "throughput_per_s" in row}
    names = list(rows)
    bars = axes.bar(names, [rows[name]["throughput_per_s"] for name in names], color="#1f77b4")
    for bar, name in zip(bars, names, strict=True):
        axes.annotate(
            f"ack p99\n{rows[name]['ack_ms']['p99']:.1f} ms",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.set_ylabel("messages/s (floor: answered, others: delivered)")
    axes.set_title(f"Closed loop, {closed['connections']} connections")


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
            f"{'yes' if outage['drain_check']['order_violations'] == 0 else 'NO'}"
            f"{_unrouted_note(outage)} | ≥ 20,000 msg/s |"
        )
        lines.append(
            f"| other portals' p99 before / during the outage | {before['p99']} / "
            f"{during['p99']} ms | unchanged |"
        )
    routing = results.get("routing")
    if routing:
        lines += _routing_rows(routing)
    on_off = results.get("throughput_routing_on_off")
    if on_off:
        lines.append(_on_off_row(on_off))
    closed = results.get("closed_loop")
    if closed:
        lines += closed_loop_rows(closed)
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


def _whole(value: float | None) -> str:
    return _fmt(None if value is None else round(value))


def _routing_rows(routing: dict[str, Any]) -> list[str]:
    targets = routing["targets"]
    pure, committed = routing["decisions_per_s"], routing["decisions_per_s_committed"]
    return [
        f"| routing: decisions/s, {_fmt(routing['operators'])} operators over "
        f"{routing['lines']} lines: dispatcher alone / committed through PortalRouter | "
        f"{_whole(pure)} / {_whole(committed)}/s | "
        f"≥ {_fmt(targets['decisions_per_s'])}/s |",
        f"| routing: append → dialog.assigned at half the max rate "
        f"({_whole(routing['append_to_assigned_rate_per_s'])}/s): p50 / p95 / p99 / max | "
        f"{routing['append_to_assigned_p50_ms']} / {routing['append_to_assigned_p95_ms']} / "
        f"{routing['append_to_assigned_p99_ms']} / {routing['append_to_assigned_max_ms']} ms | "
        f"p99 < {targets['append_to_assigned_p99_ms']} ms |",
        f"| routing: memory per open dialog | "
        f"{_fmt(routing['memory_per_open_dialog_bytes'])} bytes | — |",
    ]


def _on_off_row(on_off: dict[str, Any]) -> str:
    on, off = on_off["on"], on_off["off"]
    return (
        f"| end-to-end with routing on / off, {on_off['portals']} portals, "
        f"{on_off['operators_per_portal']} operators each | "
        f"{_fmt(on['requests_per_s'])} / {_fmt(off['requests_per_s'])} msg/s "
        f"(ratio {on_off['on_off_ratio']}; {_fmt(on['dialogs']['assigned'])} of "
        f"{_fmt(on['dialogs']['queued'])} dialogs assigned) | "
        f"≥ {on_off['target_on_off_ratio']} |"
    )


CLOSED_LOOP_LABELS = {
    "floor": "bare aiohttp floor (no storage)",
    "careful": "careful single process (group commit, batched delivery)",
    "engine_1ch": "engine, 1 channel actor",
    "engine_2ch": "engine, 2 channel actors",
}
ROLE_LABELS = {
    "driver": "driver",
    "ChannelActor": "channel",
    "PortalActor": "portal",
    "ray": "Ray",
}


def _label(name: str) -> str:
    return CLOSED_LOOP_LABELS.get(name, name)


def _by_role(by_role: dict[str, float]) -> str:
    """Known roles first, in ``ROLE_LABELS`` order."""
    order = list(ROLE_LABELS)
    roles = sorted(by_role, key=lambda role: (order.index(role) if role in order else 99, role))
    return ", ".join(f"{ROLE_LABELS.get(role, role)} {_fmt(by_role[role])}" for role in roles)


def _number(value: float | None) -> str:
    """Whole above 100, two decimals below (ratios, milliseconds)."""
    if value is None:
        return "—"
    return _whole(value) if abs(value) >= 100 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def closed_loop_rows(closed: dict[str, Any]) -> list[str]:
    """Per system: throughput, acknowledgement, cores and memory; then the engine's
    memory at rest, latency at half its rate and its ratios to the targets."""
    lines = []
    head = f"closed loop, {closed['connections']} connections"
    engines = set(closed["targets"])
    for name, row in closed["systems"].items():
        if "error" in row:
            lines.append(f"| {head}: {_label(name)} | failed: {row['error'][:120]} | — |")
            continue
        ack = row["ack_ms"]
        unit = "req/s answered" if row["delivered_per_s"] is None else "msg/s delivered"
        target = "≥ careful and ≥ 0.5 of floor; ack p99 < 10 ms" if name in engines else "—"
        lines.append(
            f"| {head}: {_label(name)} | {_whole(row['throughput_per_s'])} {unit} "
            f"({_ratio(row.get('ratio_to_floor'))} of floor), ack p50 / p99 {ack['p50']} / "
            f"{ack['p99']} ms, {row['cores_used']} cores, {_fmt(row['memory_pss_mb'])} MB PSS "
            f"({_by_role(row['memory_pss_mb_by_role'])}) | {target} |"
        )
    for name, row in closed["systems"].items():
        half = row.get("half_rate")
        if half is not None:
            latency = half["latency_ms"]
            lines.append(
                f"| {head}: {_label(name)}, webhook-to-portal at half its rate "
                f"({_whole(half['achieved_per_s'])} msg/s): p50 / p99 / max | {latency['p50']} / "
                f"{latency['p99']} / {latency['max']} ms | "
                f"{'p99 < 100 ms' if name in engines else '—'} |"
            )
    for name in sorted(engines):
        row = closed["systems"][name]
        if "rest_pss_mb" in row:
            lines.append(
                f"| {_label(name)} at rest: memory (PSS) by role | {_fmt(row['rest_pss_mb'])} MB "
                f"({_by_role(row['rest_pss_mb_by_role'])}) | < 300 MB |"
            )
        ratios = "; ".join(
            f"{t['what']}: {_number(t['value'])} vs {_number(t['target'])} = "
            f"{_ratio(t['ratio_to_target'])} {'✓' if t['met'] else '✗'}"
            for t in closed["targets"][name]
        )
        lines.append(f"| {_label(name)}: value vs target = ratio (✓ met) | {ratios} | — |")
    return lines


def add_ratios(results: dict[str, Any]) -> None:
    """Engine throughput as a share of the floor, in the results themselves (``ratio_to_floor``),
    when the run measured the floor; ratios to targets come from the scenarios."""
    floor = results.get("floor", {}).get("requests_per_s")
    if not floor:
        return
    runs = []
    if "throughput_and_latency" in results:
        runs.append(results["throughput_and_latency"]["maximum"]["load"])
    if "throughput_routing_on_off" in results:
        runs += [results["throughput_routing_on_off"][name] for name in ("off", "on")]
    for run in runs:
        run["ratio_to_floor"] = round(run["requests_per_s"] / floor, 3)


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


def _unrouted_note(outage: dict[str, Any]) -> str:
    """How much of the backlog routing still had to do when the portal came back: the drain
    includes routing it (results written before the figure existed have none)."""
    unrouted = outage.get("unrouted_before_drain")
    return "" if unrouted is None else f"; {_fmt(int(unrouted))} of them not yet routed at its start"
