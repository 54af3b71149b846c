"""The widget across two nodes, without Ray: what differs between nodes is real here, each
"node" its own data folder with its own widget log and its own channel app (its own intake
and live hub); the portal's server runs "on" node a. A call to the other node's log crosses
as a Ray call would: its arguments and results pickled (docs/channels/widget.md, "Across
machines").

A visitor homed on one node, writing and connected through the other, gets the operator's
reply live on either; a reconnect to either node gets what it missed, once and in order;
their message is on their home's disk before they are answered."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.widget.log import (
    Appended,
    LogEntry,
    NewEntry,
    StoredFile,
    Visitor,
    WidgetLog,
    log_path,
    shared_log,
)
from channels.widget.logs import LocalLog, LogPort, WidgetLogs, join_cluster
from engine.clock import ManualClock, SystemClock
from engine.errors import NotFoundError
from engine.handoff import Handoff, InProgress
from engine.store.intake import IntakeStore
from engine.store.records import OutboxRecord
from engine.store.threaded import ThreadedStore
from engine.web.app import build_app
from engine.web.webhooks import WebhookIngest
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.engine.widget.widget_kit import (
    ORIGIN,
    WIDGET_ID,
    LiveClient,
    VisitorClient,
    connect_live,
    serve_widget,
    widget_connector,
)
from tests.standins.portal import PortalStandIn


class AcrossNodes:
    """Another node's log as its widget log actor answers: every argument and result goes
    through pickle, as a Ray call's do, so what could not cross fails here too."""

    def __init__(self, log: LogPort) -> None:
        self._log = log
        self.calls = 0

    async def _cross(self, name: str, *args: Any) -> Any:
        self.calls += 1
        sent = pickle.loads(pickle.dumps(args))
        return pickle.loads(pickle.dumps(await getattr(self._log, name)(*sent)))

    async def append(self, entries: Sequence[NewEntry]) -> list[Appended]:
        result: list[Appended] = await self._cross("append", list(entries))
        return result

    async def visitor(self, hashed: bytes) -> Visitor | None:
        result: Visitor | None = await self._cross("visitor", hashed)
        return result

    async def add_visitor(
        self, hashed: bytes, connector_id: str, visitor_id: str, now: float
    ) -> None:
        await self._cross("add_visitor", hashed, connector_id, visitor_id, now)

    async def set_details(
        self, visitor_id: str, name: str | None, phone: str | None, email: str | None
    ) -> None:
        await self._cross("set_details", visitor_id, name, phone, email)

    async def entries_of(
        self, visitor_id: str, after_seq: int, limit: int, now: float
    ) -> list[LogEntry]:
        result: list[LogEntry] = await self._cross("entries_of", visitor_id, after_seq, limit, now)
        return result

    async def since(self, after_seq: int, limit: int) -> list[LogEntry]:
        result: list[LogEntry] = await self._cross("since", after_seq, limit)
        return result

    async def head(self) -> int:
        result: int = await self._cross("head")
        return result

    async def put_file(self, file_id: str, stored: StoredFile, now: float) -> None:
        await self._cross("put_file", file_id, stored, now)

    async def file(self, file_id: str) -> StoredFile | None:
        result: StoredFile | None = await self._cross("file", file_id)
        return result


@dataclass
class Nodes:
    a: Served
    b_url: str
    dirs: dict[str, Path]
    crossings: dict[str, AcrossNodes]

    def at(self, node: str) -> Served:
        """Node ``node``'s channel app, as a visitor's requests reach it."""
        if node == "a":
            return self.a
        return Served(
            self.a.engine,
            self.a.server,
            self.a.app,
            self.b_url,
            self.a.session,
            self.a.intake,
            self.a.handoff,
            self.a.in_progress,
        )


@asynccontextmanager
async def node_b(a: Served, data_dir: Path, logs: WidgetLogs) -> AsyncIterator[str]:
    """Node b's channel actor: its own intake, hand-off to the portal's server, app."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = a.engine
    intake = ThreadedStore(IntakeStore(data_dir / "intake.sqlite3"), SystemClock())
    in_progress = InProgress(engine.clock.now)
    server = a.server

    async def hand_to(destination: str, records: list[OutboxRecord], mark: float) -> list[bool]:
        return await server.append(records, 1, mark)

    handoff = Handoff(intake, hand_to, 100, engine.counters, in_progress.floor)
    await handoff.load()
    handing = asyncio.create_task(handoff.run())
    ingest = WebhookIngest(engine, intake, handoff, in_progress, a.session)
    runner = web.AppRunner(build_app(engine, ingest, logs), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        handing.cancel()
        await asyncio.gather(handing, return_exceptions=True)
        await intake.close()


@pytest.fixture
async def nodes(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> AsyncIterator[Nodes]:
    dirs = {"a": tmp_path / "data", "b": tmp_path / "node-b"}
    crossings: dict[str, AcrossNodes] = {}

    def remote(home: str) -> LogPort:
        if home not in dirs:
            raise NotFoundError(f"no widget log {home!r}")
        if home not in crossings:
            crossings[home] = AcrossNodes(LocalLog(shared_log(log_path(dirs[home]), clock)))
        return crossings[home]

    for home, data_dir in dirs.items():
        join_cluster(data_dir, home, remote)
    connectors = [widget_connector()]
    async with await serve_widget(tmp_path, clock, session, portal, connectors) as a:
        portal.engine_public_key_b64 = a.engine.engine_key["public_key"]
        dirs["b"].mkdir(parents=True, exist_ok=True)
        logs_b = WidgetLogs("b", LocalLog(shared_log(log_path(dirs["b"]), clock)), remote)
        async with node_b(a, dirs["b"], logs_b) as b_url:
            yield Nodes(a, b_url, dirs, crossings)


async def reply(nodes: Nodes, portal: PortalStandIn, dialog_id: str, text: str) -> None:
    status, body = await portal_call(
        nodes.a,
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": text}, "operator_id": "anna"},
    )
    assert status == 202, body


def texts(live: LiveClient) -> list[str]:
    return [entry["content"].get("text", "(file)").split(": ", 1)[-1] for entry in live.entries]


async def test_a_visitor_of_node_b_writing_through_node_a_gets_the_reply_live_on_both(
    nodes: Nodes, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(nodes.at("b")).start()  # the session made on node b
    assert visitor.visitor_id.endswith("@b") and visitor.token.endswith("@b")
    on_a = await connect_live(VisitorClient(nodes.at("a"), token=visitor.token))
    on_b = await connect_live(visitor)

    through_a = VisitorClient(nodes.at("a"), token=visitor.token)
    status, body = await through_a.send("hello from a", "c-1")
    assert status == 200, body
    # Durable before the answer, on the visitor's home's disk.
    home = WidgetLog(log_path(nodes.dirs["b"]))
    assert [e.seq for e in home.entries_of(visitor.visitor_id, 0, 10, 0.0)] == [body["seq"]]
    home.close()
    assert nodes.crossings["b"].calls > 0

    [event] = await portal.wait_for_events(1, "message.")
    assert event["data"]["customer"]["channel_user_id"] == visitor.visitor_id
    await reply(nodes, portal, event["dialog"]["id"], "hi, from the portal actor on a")
    await on_a.until(2)
    await on_b.until(2)
    assert texts(on_a) == texts(on_b) == ["hello from a", "hi, from the portal actor on a"]
    assert [e["seq"] for e in on_a.entries] == [e["seq"] for e in on_b.entries]

    # A repeat through the other node is the entry it was.
    status, again = await visitor.send("hello from a", "c-1")
    assert (status, again["seq"]) == (200, body["seq"])
    # Dropped, and back on either node from the cursor: only what was missed, once.
    cursor = on_a.entries[-1]["seq"]
    await on_a.ws.close()
    await reply(nodes, portal, event["dialog"]["id"], "while you were away")
    await on_b.until(3)
    resumed = await connect_live(VisitorClient(nodes.at("a"), token=visitor.token), cursor)
    await resumed.until(1)
    assert texts(resumed) == ["while you were away"]
    fresh = await connect_live(VisitorClient(nodes.at("b"), token=visitor.token))
    await fresh.until(3)
    assert texts(fresh) == texts(on_b)
    for live in (on_b, resumed, fresh):
        await live.ws.close()


async def test_a_visitor_of_node_a_uploads_and_writes_through_node_b(
    nodes: Nodes, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(nodes.at("a")).start()
    assert visitor.visitor_id.endswith("@a")
    through_b = VisitorClient(nodes.at("b"), token=visitor.token)
    on_b = await connect_live(through_b)
    status, upload = await through_b.call(
        "/files", b"plain words", **{"Content-Type": "text/plain", "X-File-Name": "a.txt"}
    )
    assert status == 201 and upload["file_id"].endswith("@a"), upload
    status, body = await through_b.call(
        "/messages", {"client_id": "f-1", "file_id": upload["file_id"]}
    )
    assert status == 200, body
    [event] = await portal.wait_for_events(1, "message.")
    url = event["data"]["content"]["file"]["url"]
    for node in ("a", "b"):  # the file's URL works on every node
        status, data = await nodes.at(node).request("GET", "/" + url.split("/", 3)[3])
        assert (status, data) == (200, "plain words")
    await reply(nodes, portal, event["dialog"]["id"], "got it")
    await on_b.until(2)
    assert texts(on_b) == ["(file)", "got it"]
    await on_b.ws.close()


async def test_a_token_of_a_home_the_engine_does_not_have_is_refused(nodes: Nodes) -> None:
    stranger = VisitorClient(nodes.at("a"), token="x" * 43 + "@zz")
    status, body = await stranger.send("hi", "c-1")
    assert (status, body["error"]) == (401, "bad_token")
    status, _ = await nodes.at("a").request("GET", f"/widget/{WIDGET_ID}/files/file_{'0' * 32}@zz")
    assert status == 404
    assert ORIGIN  # the kit's origin is what the visitors send
