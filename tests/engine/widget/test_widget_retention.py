"""The widget log's retention (docs/channels/widget.md, "Retention"): a visitor past it is
removed whole, one with an open dialog or any activity within it stays whole, typing
signals go after an hour; the loop runs on the engine's clock and survives a failed pass.
Logic without Ray: the log's real SQLite file, a manual clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from actors.channel_cache import ChannelCache
from channels.widget.channel import typing_entry
from channels.widget.config import WidgetRetention
from channels.widget.log import (
    NewEntry,
    StoredFile,
    WidgetLog,
    close_shared_logs,
    log_path,
    token_hash,
)
from channels.widget.retention import (
    PRUNE_EVERY_S,
    RetainedWidget,
    WidgetPruner,
    retained_widgets,
)
from engine.clock import ManualClock
from engine.config import ConnectorConfig
from engine.metrics import Counters
from tests.engine.conftest import eventually
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.engine.widget.widget_kit import VisitorClient, connect_live
from tests.standins.portal import PortalStandIn

DAY_S = 86_400.0
T0 = 1_800_000_000.0


def said(visitor_id: str, key: str, connector_id: str = "site") -> NewEntry:
    body = orjson.dumps({"from": "visitor", "content": {"kind": "text", "text": key}})
    return NewEntry(connector_id, visitor_id, f"v:{visitor_id}:{key}", body)


def visitor(log: WidgetLog, visitor_id: str, created_at: float, connector_id: str = "site") -> None:
    log.add_visitor(token_hash(f"token-{visitor_id}"), connector_id, visitor_id, created_at)


def upload(log: WidgetLog, visitor_id: str, at: float) -> None:
    stored = StoredFile("site", visitor_id, "a.txt", "text/plain", b"hello")
    log.put_file(f"file_{visitor_id}", stored, at)


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path
    await close_shared_logs()


async def test_a_visitor_past_the_retention_goes_whole_and_others_stay_whole(
    data_dir: Path,
) -> None:
    path = log_path(data_dir)
    path.parent.mkdir(parents=True)
    log = WidgetLog(path)
    for name in ("gone", "open", "replied", "uploader"):
        visitor(log, name, T0 - 100 * DAY_S)
        log.append([said(name, "hello")], T0 - 95 * DAY_S)
    log.append([said("gone", "reply-1")], T0 - 91 * DAY_S)
    upload(log, "gone", T0 - 92 * DAY_S)
    log.append([said("replied", "reply-1")], T0 - 89 * DAY_S)  # an answer within 90 days
    upload(log, "uploader", T0 - 10 * DAY_S)
    visitor(log, "silent-old", T0 - 2 * DAY_S)
    visitor(log, "silent-new", T0 - 3600.0)
    visitor(log, "elsewhere", T0 - 100 * DAY_S, connector_id="other")
    log.append([said("elsewhere", "hello", "other")], T0 - 95 * DAY_S)
    [old_typing] = log.append([typing_entry("site", "replied", "anna")], T0 - 7200.0)
    [new_typing] = log.append([typing_entry("site", "replied", "anna")], T0 - 600.0)
    head = log.head()
    log.close()

    clock, counters = ManualClock(T0), Counters()
    pruner = WidgetPruner(path, clock, counters)
    widget = RetainedWidget("site", WidgetRetention(), open_visitors={"open"})
    forgotten = await pruner.prune([widget])

    assert (forgotten.visitors, forgotten.files) == (2, 1)  # "gone" and "silent-old"
    assert forgotten.entries == 3  # gone's two, and the old typing signal
    log = WidgetLog(path)
    assert log.visitor(token_hash("token-gone")) is None
    assert log.visitor(token_hash("token-silent-old")) is None
    assert log.entries_of("gone", 0, 10, T0) == [] and log.file("file_gone") is None
    for kept in ("open", "replied", "uploader", "silent-new"):
        assert log.visitor(token_hash(f"token-{kept}")) is not None, kept
    assert len(log.entries_of("open", 0, 10, T0)) == 1
    assert len(log.entries_of("replied", 0, 10, T0)) == 2  # the typing was only ever live
    assert log.file("file_uploader") is not None
    assert log.visitor(token_hash("token-elsewhere")) is not None  # not this widget's
    assert [e.seq for e in log.since(0, 100) if e.visitor_id == "replied"][-1] == new_typing.seq
    assert old_typing.seq not in [e.seq for e in log.since(0, 100)]
    # A removed entry's seq is never given again: a cursor never skips a new entry.
    [after] = log.append([said("replied", "later")], T0)
    assert after.seq > head
    log.close()
    assert counters.value("openlines_widget_pruned_total", what="visitors") == 2
    assert counters.value("openlines_widget_pruned_total", what="files") == 1


async def test_a_visitor_who_writes_while_pruned_is_kept(data_dir: Path) -> None:
    """The retention is checked again in the removing transaction: a message that came
    between the read and the removal keeps its visitor."""
    path = log_path(data_dir)
    path.parent.mkdir(parents=True)
    log = WidgetLog(path)
    visitor(log, "back", T0 - 100 * DAY_S)
    log.append([said("back", "hello")], T0 - 95 * DAY_S)
    page = log.idle_visitors("site", T0 - 90 * DAY_S, T0 - DAY_S, None, 10)
    assert page.idle == ["back"] and page.last is None
    log.append([said("back", "I am back")], T0)
    forgotten = log.forget_visitors(page.idle, T0 - 90 * DAY_S, T0 - DAY_S)
    assert forgotten.visitors == 0
    assert len(log.entries_of("back", 0, 10, T0)) == 2
    log.close()


async def test_many_visitors_are_pruned_page_by_page(data_dir: Path) -> None:
    path = log_path(data_dir)
    path.parent.mkdir(parents=True)
    log = WidgetLog(path)
    for n in range(1203):
        visitor(log, f"v{n:05d}", T0 - 3 * DAY_S + n)  # silent for two days and more
    visitor(log, "kept", T0 - 3 * DAY_S + 600)
    log.append([said("kept", "hello")], T0 - DAY_S)
    log.close()
    pruner = WidgetPruner(path, ManualClock(T0), Counters())
    forgotten = await pruner.prune([RetainedWidget("site", WidgetRetention(), ())])
    assert forgotten.visitors == 1203
    log = WidgetLog(path)
    assert log.idle_visitors("site", T0, T0, None, 5000).idle == ["kept"]
    log.close()


async def test_the_loop_prunes_on_the_engines_clock_and_survives_a_failed_pass(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = log_path(data_dir)
    path.parent.mkdir(parents=True)
    log = WidgetLog(path)
    visitor(log, "silent", T0 - 1.0)
    log.close()
    site = ConnectorConfig(
        id="site",
        channel="widget",
        portal="p1",
        line="support",
        credentials={
            "widget_id": "shop-widget-0001",
            "allowed_origins": ["https://shop.test"],
            "retention": {"silent_visitor_hours": 2},
        },
    )
    broken = ConnectorConfig(
        id="broken", channel="widget", portal="p1", line="support", credentials={}
    )
    connectors = [broken, site]
    channels = ChannelCache(data_dir)
    # Another node's log, pruned there by the same pass (its widget log actor's ``prune``).
    there = log_path(data_dir / "node-b")
    there.parent.mkdir(parents=True)
    other = WidgetLog(there)
    visitor(other, "silent@b", T0 - 1.0)
    other.close()
    clock, counters = ManualClock(T0), Counters()
    node_b = WidgetPruner(there, clock, Counters())
    pruner = WidgetPruner(path, clock, counters, elsewhere=lambda: [node_b.prune])
    running = asyncio.create_task(
        pruner.run(lambda: retained_widgets(connectors, channels.get, {}))
    )
    try:
        await eventually(lambda: clock.sleepers == 1, what="the loop waiting on the clock")
        with caplog.at_level(logging.ERROR, "channels.widget.retention"):
            await clock.advance(PRUNE_EVERY_S)
            await eventually(
                lambda: counters.value("openlines_loop_errors_total", loop="widget_prune") == 1,
                what="the failed pass counted",
            )
        assert "widget retention: pruning failed" in caplog.text
        connectors.remove(broken)  # the admin fixes the registry; the loop carries on
        await eventually(lambda: clock.sleepers == 1, what="the loop waiting again")
        await clock.advance(PRUNE_EVERY_S)
        await eventually(
            lambda: counters.value("openlines_widget_pruned_total", what="visitors") == 1,
            what="the silent visitor pruned after two hours",
        )
        other = WidgetLog(there)
        await eventually(
            lambda: other.visitor(token_hash("token-silent@b")) is None,
            what="node b's silent visitor pruned by the same pass",
        )
        other.close()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_through_the_engine_an_open_dialog_keeps_its_visitor_and_a_closed_one_goes(
    widget_served: Served, portal: PortalStandIn, clock: ManualClock
) -> None:
    """Pruning as the portal actor does, over the engine's real parts (the registry's
    widgets, the host's open dialogs, the log the API wrote), 91 days later: with the
    visitor's dialog open nothing of theirs goes; finished, they go, and their token
    starts a new visitor. (The loop itself: the test above; advancing the engine's own
    clock by months would wake its one-second timers millions of times.)"""
    chatting = await VisitorClient(widget_served).start()
    assert (await chatting.send("hello", "c-1"))[0] == 200
    [event] = await portal.wait_for_events(1, "message.")
    dialog = f"/api/v1/dialogs/{event['dialog']['id']}"
    engine, server = widget_served.engine, widget_served.server
    later = ManualClock(clock.now() + 91 * DAY_S)
    pruner = WidgetPruner(log_path(engine.config.data_dir), later, Counters())

    def widgets() -> list[RetainedWidget]:
        registry = engine.service.registry
        return retained_widgets(
            registry.connectors.values(), engine.channel, server.host.open_dialog_keys()
        )

    assert [w.open_visitors for w in widgets() if w.connector_id == "site"] == [
        {chatting.visitor_id}
    ]
    assert (await pruner.prune(widgets())).visitors == 0
    live = await connect_live(chatting)
    [mine] = await live.until(1)
    assert mine["client_id"] == "c-1"  # the open dialog kept the whole conversation
    await live.ws.close()

    status, body = await portal_call(
        widget_served, portal, "POST", f"{dialog}/finish", {"operator_id": "anna"}
    )
    assert status == 200, body
    forgotten = await pruner.prune(widgets())
    assert forgotten.visitors == 1 and forgotten.entries >= 1
    again = await VisitorClient(widget_served).start(token=chatting.token)
    assert again.visitor_id != chatting.visitor_id  # forgotten: a new visitor
