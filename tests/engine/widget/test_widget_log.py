"""The widget log as several processes share it: a reply written through one connection
reaches a live connection fed by another's tail, once and in order; a reply sent again
(after a restart) is one entry (docs/channels/widget.md, "The live path back")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from channels.widget.channel import WidgetChannel, typing_entry
from channels.widget.config import WidgetCredentials
from channels.widget.live import LiveConnection, LiveHub
from channels.widget.log import (
    TYPING_SHOWN_S,
    NewEntry,
    WidgetLog,
    close_shared_logs,
    log_path,
)
from channels.widget.logs import LocalLog, WidgetLogs
from engine.clock import SystemClock
from engine.metrics import Counters
from engine.models import DialogTarget, OutboundText, ReplyRequest, Route
from engine.store.threaded import ThreadedStore
from tests.engine.conftest import eventually

ROUTE = Route(portal_id="p1", line_id="support", connector_id="site", channel="widget")
CREDENTIALS = WidgetCredentials(widget_id="shop-widget-0001", allowed_origins=("http://s.test",))


def target(visitor_id: str) -> DialogTarget:
    return DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=visitor_id, customer_id=visitor_id)


async def test_a_reply_written_elsewhere_reaches_the_live_connection_once_in_order(
    tmp_path: Path,
) -> None:
    path = log_path(tmp_path)
    # The "channel actor": its own connection to the file, its hub tailing it.
    reader = ThreadedStore(WidgetLog(path), SystemClock())
    hub = LiveHub(WidgetLogs("", LocalLog(reader)), Counters(), poll_s=0.005)
    await hub.start()
    # The "portal actor": the channel plug-in with the process's shared connection.
    channel = WidgetChannel(ROUTE, CREDENTIALS, data_dir=tmp_path)
    received: list[dict[str, object]] = []

    async def send(frame: bytes) -> None:
        received.append(orjson.loads(frame))

    try:
        async with aiohttp.ClientSession() as session:
            first = await channel.send(
                session, target("v1"), ReplyRequest(content=OutboundText(text="1")), reply_id="r1"
            )
            # A connection resuming after entry 0: the backlog and the tail overlap.
            connection = LiveConnection("v1", 0, send)
            await hub.add(connection)
            backlog = await reader.call(reader.store.entries_of, "v1", 0, 100, 0.0)
            sends = [
                channel.send(
                    session,
                    target("v1"),
                    ReplyRequest(content=OutboundText(text=str(n))),
                    reply_id=f"r{n}",
                )
                for n in range(2, 12)
            ]
            catching_up = asyncio.create_task(connection.catch_up(backlog))
            receipts = [await s for s in sends]
            await catching_up
            # A repeat of a reply (a restart cut its attempt short) is the entry it was.
            again = await channel.send(
                session, target("v1"), ReplyRequest(content=OutboundText(text="1")), reply_id="r1"
            )
            assert again == first
            await channel.send(
                session, target("v2"), ReplyRequest(content=OutboundText(text="x")), reply_id="o"
            )
            await eventually(lambda: len(received) >= 11, what="every reply")
        texts = [entry["content"]["text"] for entry in received]  # type: ignore[index]
        assert texts == [str(n) for n in range(1, 12)]
        seqs = [entry["seq"] for entry in received]
        assert seqs == sorted(seqs) and len(set(seqs)) == 11
        assert {f"w{s}" for s in seqs} == {r.channel_message_ids[0] for r in [first, *receipts]}
    finally:
        await hub.stop()
        await reader.close()
        await close_shared_logs()


def test_a_visitors_entry_keeps_its_seq_when_sent_again(tmp_path: Path) -> None:
    log = WidgetLog(log_path(tmp_path))
    entry = NewEntry("site", "v1", "v:v1:c-1", b"{}")
    [first] = log.append([entry], 1.0)
    [other] = log.append([NewEntry("site", "v1", "v:v1:c-2", b"{}")], 2.0)
    [again] = log.append([entry], 3.0)
    assert (first.new, other.new, again.new) == (True, True, False)
    assert again.seq == first.seq < other.seq
    assert [e.seq for e in log.entries_of("v1", 0, 10, 0.0)] == [first.seq, other.seq]
    assert [e.seq for e in log.entries_of("v1", first.seq, 10, 0.0)] == [other.seq]
    assert [e.seq for e in log.entries_of("v1", 0, 1, 0.0)] == [other.seq]  # the newest, fresh page
    log.close()


def test_a_typing_signal_is_in_a_backlog_only_while_it_is_fresh(tmp_path: Path) -> None:
    log = WidgetLog(log_path(tmp_path))
    [said] = log.append([NewEntry("site", "v1", "v:v1:c-1", b"{}")], 100.0)
    [typing] = log.append([typing_entry("site", "v1", "anna")], 100.0)
    assert [e.seq for e in log.entries_of("v1", 0, 10, 105.0)] == [said.seq, typing.seq]
    later = 100.0 + TYPING_SHOWN_S + 1
    assert [e.seq for e in log.entries_of("v1", 0, 10, later)] == [said.seq]
    assert [e.seq for e in log.entries_of("v1", said.seq, 10, later)] == []
    assert [e.seq for e in log.since(0, 10)] == [said.seq, typing.seq]  # live: always
    log.close()
