"""A node's widget log as the other nodes reach it through Ray (docs/channels/widget.md,
"Across machines"): every call through ``remote_log`` crosses a real Ray call, commits
before it answers, and the actor killed with kill -9 comes back with everything it had
answered; meanwhile its callers get the engine's 503, never a wrong answer. On one node
the supervisor starts no log actor and no process joins a cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import orjson
import pytest
import ray

from actors.faults import RESTARTS
from actors.remote import Remote
from actors.settings import ActorSettings
from actors.widget_log import (
    WidgetLogActor,
    home_of_node,
    remote_log,
    start_widget_logs,
    widget_log_name,
)
from channels.widget.config import WidgetRetention
from channels.widget.log import NewEntry, StoredFile, token_hash
from channels.widget.retention import RetainedWidget
from engine.errors import UnavailableError
from engine.security.keys import EngineSigningKey
from tests.harness import engine_config

pytestmark = pytest.mark.usefixtures("ray_session")
DEADLINE_S = 60.0


def settings_in(tmp_path: Path) -> ActorSettings:
    config = engine_config(tmp_path, [], [])
    config.data_dir.mkdir(parents=True, exist_ok=True)
    EngineSigningKey.load_or_create(config.data_dir / "engine_ed25519.pem")
    return ActorSettings(
        config,
        (config.data_dir / "engine_ed25519.pem").read_bytes(),
        time.time(),
        namespace=f"test-{uuid.uuid4().hex[:10]}",
    )


def said(visitor_id: str, key: str) -> NewEntry:
    body = orjson.dumps({"from": "visitor", "content": {"kind": "text", "text": key}})
    return NewEntry("site", visitor_id, f"v:{visitor_id}:{key}", body)


async def test_another_nodes_log_answers_through_ray_and_survives_kill_9(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    handle = WidgetLogActor.options(  # type: ignore[attr-defined]
        name=widget_log_name("n2"), namespace=settings.namespace, **RESTARTS
    ).remote(settings)
    log = remote_log(handle)
    try:
        visitor = "vis_1@n2"
        await log.add_visitor(token_hash("t@n2"), "site", visitor, 100.0)
        found = await log.visitor(token_hash("t@n2"))
        assert found is not None and found.visitor_id == visitor
        [first] = await log.append([said(visitor, "hello")])
        [again] = await log.append([said(visitor, "hello")])
        assert again.seq == first.seq and first.new and not again.new
        stored = StoredFile("site", visitor, "a.txt", "text/plain", b"words")
        await log.put_file(f"file_{'1' * 32}@n2", stored, 100.0)

        os.kill(await handle.pid.remote(), signal.SIGKILL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while True:  # the widget's retries, not a wait for an actor: each try is an answer
            try:
                head = await log.head()
                break
            except UnavailableError:
                assert loop.time() < deadline, "the log actor did not come back"
                await asyncio.sleep(0.05)  # a poll with a deadline (above)
        assert head == first.seq  # durable before it answered
        assert [e.seq for e in await log.since(0, 10)] == [first.seq]
        assert [e.seq for e in await log.entries_of(visitor, 0, 10, 100.0)] == [first.seq]
        assert await log.file(f"file_{'1' * 32}@n2") == stored
        assert (await log.visitor(token_hash("t@n2"))) == found

        # A portal actor's retention pass over this node's visitors of its widget.
        await log.add_visitor(token_hash("s@n2"), "site", "vis_2@n2", time.time() - 7200)
        widget = RetainedWidget("site", WidgetRetention(silent_visitor_hours=1), set())
        forgotten = await Remote(handle).prune([widget])
        assert (forgotten.visitors, forgotten.entries) == (1, 0)
        assert await log.visitor(token_hash("s@n2")) is None
        assert await log.visitor(token_hash("t@n2")) == found
    finally:
        ray.kill(handle, no_restart=True)


async def test_on_one_node_no_log_actor_is_started_and_homes_stay_empty(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    same, actors = start_widget_logs(settings)
    assert (same, actors) == (settings, [])
    assert same.head_node_id == ""
    node = ray.get_runtime_context().get_node_id()
    assert home_of_node(node, node) == ""
    assert home_of_node("AB12" * 14, node) == "ab12ab12ab12ab12"
