"""Many portals in one portal actor's logic, without Ray: start time, idle memory, delivery.

    python -m bench.portal_host --portals 10000 --messages 30000 --rate 3000 --floor-s 10
    python -m bench.portal_host --portals 1 --chats 3000 --messages 30000 --rate 2500

Builds a ``MailboxHost`` the way the portal actor does (a real SQLite file, ``HttpTransport``
on one shared session, ``EngineSealer``) serving ``--portals`` portals of the bench's sink
(``bench.sink``, a separate process that verifies and opens every batch), then measures:

* **start**: ``configure()`` of every portal on a fresh file, and again on the file as the
  run left it (a restart);
* **idle memory**: what the hosted portals hold once started, per portal, from tracemalloc
  (``--memory``: traced allocations only; tracing slows everything, so it is a run of its own)
  or from the process's resident set;
* **delivery**: ``--messages`` customer messages appended at ``--rate`` per second in
  hand-off sized calls, ``--chats`` per portal (one by default), round robin over the
  portals and then over each portal's chats: with thousands of
  quiet portals nearly every message is a batch of its own. Reported as the sink saw it
  (messages over first-to-last receipt, as ``bench.scenarios`` computes ``delivered_per_s``),
  with latency from the append to the sink's receipt and the process's CPU time per
  message (what the machine's load changes least);
* **the delivery floor** (``bench.delivery_floor``) against the same sink, so the figure
  above can be read as a share of it;
* **sleep** (``--sleep``, after the delivery): every dialog the traffic opened is finished,
  the host's clock is moved past the quiet time and ``sleep_quiet`` puts the portals back
  to sleep. What the Python objects of the run hold per portal is read from tracemalloc,
  which traces from the delivery on (so the delivery figures of such a run are slower),
  with everything started and after the sleep: the process's resident set keeps what the
  allocator does not hand back.

It isolates the portal actor's own costs from Ray, the channel actors and the load generator,
so a change to delivery or start-up can be measured in a minute instead of a full bench run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.sink import SinkClient, write_keys
from engine.clock import SystemClock
from engine.config import PortalConfig
from engine.delivery.host import QUIET_BEFORE_SLEEP_S, MailboxHost
from engine.delivery.sealer import EngineSealer
from engine.delivery.transport import HttpTransport
from engine.errors import NotFoundError
from engine.ids import inbound_event_id
from engine.ingest import outbox_record
from engine.models import Customer, InboundMessage, Route, TextContent
from engine.routing.rules import RuleSet
from engine.security.keys import ed25519_public_to_b64, generate_portal_keypair
from engine.store.records import OutboxRecord

LINE = "support"
HANDOFF_CHUNK = 1000
"""Records per append, as a channel actor's hand-off carries them (``handoff_batch_max``)."""


class ShiftedClock(SystemClock):
    """Real time, plus what the benchmark moved it by: the portals' quiet time passes at
    once, while delivery ran on real time."""

    def __init__(self) -> None:
        self.shift_s = 0.0

    def now(self) -> float:
        return super().now() + self.shift_s


def no_channel(connector_id: str) -> Any:
    raise NotFoundError(f"no channel {connector_id!r} in this benchmark")


def portal_configs(sink: SinkClient, public_keys: dict[str, str]) -> list[PortalConfig]:
    return [
        PortalConfig(
            id=portal_id,
            endpoint=sink.endpoint(portal_id),
            public_key=public_key,
            license_key=f"bench-license-{portal_id}-0000",
            retry_initial_s=0.2,
            retry_max_s=2.0,
            lines=({"id": LINE},),  # type: ignore[arg-type]
        )
        for portal_id, public_key in public_keys.items()
    ]


def message(portal_id: str, chat_number: int, number: int, now_s: float) -> OutboxRecord:
    """A customer's Telegram text, stamped for the sink's latency histogram."""
    connector = f"{portal_id}-telegram"
    chat = f"chat-{portal_id}-{chat_number}"
    return outbox_record(
        InboundMessage(
            id=inbound_event_id(connector, str(number)),
            route=Route(
                portal_id=portal_id, line_id=LINE, connector_id=connector, channel="telegram"
            ),
            dialog_key=chat,
            customer=Customer(channel_user_id=chat, name="Мария Иванова"),
            content=TextContent(text=f"lt={time.monotonic_ns()} Вопрос по заказу №{number}"),
            channel_message_id=str(number),
            channel_event_id=str(number),
            order_key=number,
            sent_at=now_s,
            received_at=now_s,
        )
    )


class Run:
    def __init__(self, portals: int, workdir: Path, chats: int = 1) -> None:
        self.portals = portals
        self.chats = chats
        """Chats per portal: message ``n`` goes to portal ``n % portals``, in its chat
        ``(n // portals) % chats``."""
        self.workdir = workdir
        self.sink = SinkClient()
        self.engine_key = Ed25519PrivateKey.generate()
        self.public_keys: dict[str, str] = {}
        self.clock = ShiftedClock()

    async def start_sink(self) -> None:
        keys = {f"p{n}": generate_portal_keypair() for n in range(self.portals)}
        self.public_keys = {pid: public for pid, (_, public) in keys.items()}
        path = self.workdir / "sink-keys.json"
        engine_public = ed25519_public_to_b64(self.engine_key.public_key())
        write_keys(path, engine_public, {pid: private for pid, (private, _) in keys.items()})
        await self.sink.start(0, path)

    def host(self, session: aiohttp.ClientSession) -> MailboxHost:
        clock = self.clock
        return MailboxHost(
            self.workdir / "outbox.sqlite3",
            clock,
            HttpTransport(session, clock),
            EngineSealer(self.engine_key),
            no_channel,
            session,
            rng=random.Random(7),
        )

    async def configure(self, host: MailboxHost, configs: list[PortalConfig]) -> float:
        await host.set_rules(RuleSet())
        began = time.perf_counter()
        await host.configure(configs)
        elapsed = time.perf_counter() - began
        gc.freeze()  # as the portal actor does after its start
        return elapsed

    async def deliver(
        self,
        host: MailboxHost,
        messages: int,
        rate: float,
        timeout_s: float,
        handoff: int = HANDOFF_CHUNK,
    ) -> dict[str, Any]:
        await self.sink.reset()
        ids = list(self.public_keys)
        cpu_before = time.process_time()
        began = time.perf_counter()
        for first in range(0, messages, handoff):
            due = began + first / rate
            wait_s = due - time.perf_counter()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            now_s = time.time()
            building = time.process_time()
            records = [
                message(ids[n % len(ids)], (n // len(ids)) % self.chats, n, now_s)
                for n in range(first, min(messages, first + handoff))
            ]
            cpu_before += time.process_time() - building  # the load, not the host's work
            await host.append(records)
        appended_s = time.perf_counter() - began
        deadline = time.perf_counter() + timeout_s
        stats = await self.sink.stats()
        while stats["messages"] < messages and time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
            stats = await self.sink.stats()
        cpu_s = time.process_time() - cpu_before
        first_ns, last_ns = stats["first_event_ns"], stats["last_event_ns"]
        seconds = (last_ns - first_ns) / 1e9 if first_ns and last_ns and last_ns > first_ns else 0
        return {
            "cpu_ms_per_message": round(1000 * cpu_s / max(1, stats["messages"]), 3),
            "messages": messages,
            "offered_per_s": round(messages / appended_s, 1),
            "delivered": stats["messages"],
            "delivered_per_s": round(stats["messages"] / seconds, 1) if seconds else 0.0,
            "batches": stats["batches"],
            "latency_ms": stats["latency_ms"],
            "duplicates": stats["message_duplicates"],
            "order_violations": stats["order_violations"],
            "seq_problems": stats["seq_problems"],
        }

    async def sleep(self, host: MailboxHost, timeout_s: float) -> dict[str, Any]:
        """The end of the day: every dialog the traffic opened is finished and its closing
        delivered; past the quiet time, the portals fall asleep again."""
        started = [p for p in host.portal_ids if host.started(p) is not None]
        for portal_id in started:
            router = await host.router(portal_id)
            for dialog_id in list(router.dispatcher.board.dialogs):
                await router.finish(dialog_id, None)
        deadline = time.perf_counter() + timeout_s
        while not all(hosted.quiet for p in started if (hosted := host.started(p)) is not None):
            if time.perf_counter() > deadline:
                raise TimeoutError("the closed dialogs were not delivered in time")
            await asyncio.sleep(0.05)
        gc.collect()
        traced_started = tracemalloc.get_traced_memory()[0]
        self.clock.shift_s += QUIET_BEFORE_SLEEP_S
        began = time.perf_counter()
        asleep = await host.sleep_quiet()
        elapsed = time.perf_counter() - began
        gc.collect()
        traced_asleep = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {
            "started_before": len(started),
            "put_to_sleep": len(asleep),
            "seconds": round(elapsed, 3),
            "traced_kb_per_portal_started": round(traced_started / 1000 / self.portals, 2),
            "traced_kb_per_portal_asleep_again": round(traced_asleep / 1000 / self.portals, 2),
        }

    async def floor(self, seconds: float) -> dict[str, Any]:
        keys = self.workdir / "floor-keys.json"
        keys.write_bytes(orjson.dumps(self.public_keys))
        pem = self.workdir / "engine.pem"
        pem.write_bytes(
            self.engine_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        await self.sink.reset()
        cpu_before = _children_cpu_s()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.delivery_floor",
            "--sink",
            self.sink.base_url,
            "--keys",
            str(keys),
            "--engine-key",
            str(pem),
            "--seconds",
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
        cpu_s = _children_cpu_s() - cpu_before
        result["cpu_ms_per_message"] = round(1000 * cpu_s / max(1, result["delivered"]), 3)
        return result


def _children_cpu_s() -> float:
    """CPU time of waited-for child processes (the floor's, once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 1e6)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="olb-host-"))
    run = Run(args.portals, workdir, args.chats)
    await run.start_sink()
    result: dict[str, Any] = {"portals": args.portals}
    try:
        connector = aiohttp.TCPConnector(limit=args.connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            configs = portal_configs(run.sink, run.public_keys)
            host = run.host(session)
            gc.collect()
            if args.memory:
                tracemalloc.start(25)
                before = tracemalloc.take_snapshot()
            rss_before = rss_mb()
            result["configure_s"] = round(await run.configure(host, configs), 3)
            gc.collect()
            result["rss_kb_per_portal"] = round(1000 * (rss_mb() - rss_before) / args.portals, 1)
            if args.memory:
                after = tracemalloc.take_snapshot()
                tracemalloc.stop()
                stats = after.compare_to(before, "traceback")
                grown = sum(stat.size_diff for stat in stats)
                result["traced_kb_per_portal"] = round(grown / 1000 / args.portals, 2)
                result["top_allocations"] = [
                    {
                        "kb_per_portal": round(stat.size_diff / 1000 / args.portals, 3),
                        "count": stat.count_diff,
                        "where": [str(frame) for frame in stat.traceback[-6:]],
                    }
                    for stat in stats[: args.top]
                ]
            if args.messages and args.sleep:
                tracemalloc.start()
            if args.messages:
                result["delivery"] = await run.deliver(
                    host, args.messages, args.rate, args.timeout_s, args.handoff
                )
            if args.messages and args.sleep:
                result["sleep"] = await run.sleep(host, args.timeout_s)
            await host.close()
            restarted = run.host(session)
            result["restart_configure_s"] = round(await run.configure(restarted, configs), 3)
            await restarted.close()
        if args.floor_s:
            result["floor"] = await run.floor(args.floor_s)
            if args.messages and result["floor"]["delivered_per_s"]:
                result["ratio_to_floor"] = round(
                    result["delivery"]["delivered_per_s"] / result["floor"]["delivered_per_s"], 3
                )
    finally:
        await run.sink.stop()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.portal_host", description=__doc__)
    parser.add_argument("--portals", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=1, help="chats per portal")
    parser.add_argument(
        "--handoff", type=int, default=HANDOFF_CHUNK, help="records per append (a hand-off)"
    )
    parser.add_argument("--messages", type=int, default=0, help="0: start and memory only")
    parser.add_argument("--rate", type=float, default=3000.0, help="messages appended per s")
    parser.add_argument("--connections", type=int, default=100, help="the session's limit")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--floor-s", type=float, default=0.0, help="0: no floor run")
    parser.add_argument("--memory", action="store_true", help="tracemalloc (slow)")
    parser.add_argument(
        "--sleep", action="store_true", help="after the delivery, put quiet portals to sleep"
    )
    parser.add_argument("--top", type=int, default=12, help="allocation sites listed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    result = asyncio.run(main_async(parse_args(argv)))
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
