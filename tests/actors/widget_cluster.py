"""The widget on a Ray cluster of two nodes on this machine (``ray.cluster_utils.Cluster``),
run as a program of its own because a test process has the session's one Ray
(``tests/actors/test_widget_cluster.py`` runs it, docs/channels/widget.md, "Across
machines").

The engine starts one channel actor per node (both on the shared port) and a widget log
actor per node. Visitors open sessions until one is homed on the second node; that visitor
then writes through fresh connections (spread over both nodes' actors), holds a live
connection, and gets every operator reply live, once and in order, and after reconnecting
through fresh connections from its cursor, only what it missed.

    python -m tests.actors.widget_cluster DATA_DIR
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import ray
from ray.cluster_utils import Cluster

from tests.harness import engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

WIDGET_ID = "acme-widget-0001"
ORIGIN = "http://acme.test"
DEADLINE_S = 60.0
RULES = {
    "acme-support": {
        "portal": "acme",
        "line": "support",
        "queue": {"members": [{"operator": "anna"}], "require_accept": False},
    }
}


def headers(token: str = "") -> dict[str, str]:
    sent = {"Origin": ORIGIN, "Content-Type": "application/json"}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return sent


async def fresh_post(url: str, body: object, token: str = "") -> tuple[int, Any]:
    """On a connection of its own: ``SO_REUSEPORT`` picks either node's channel actor."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, data=orjson.dumps(body), headers=headers(token)) as answer,
    ):
        return answer.status, await answer.json()


async def live_entries(base: str, token: str, after: int, count: int) -> list[dict[str, Any]]:
    """A live connection from ``after`` until ``count`` entries came."""
    entries: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"{base}/live".replace("http", "ws"), headers={"Origin": ORIGIN}) as ws,
    ):
        await ws.send_str(orjson.dumps({"token": token, "after": after}).decode())
        async with asyncio.timeout(DEADLINE_S):
            while len(entries) < count:
                frame = orjson.loads((await ws.receive()).data)
                if "seq" in frame:
                    entries.append(frame)
    return entries


def text_of(entry: dict[str, Any]) -> str:
    return str(entry["content"]["text"]).split(": ", 1)[-1]


async def scenario(data_dir: Path) -> None:
    portal = PortalStandIn.create("acme")
    await portal.start()
    connector = {
        "id": "site",
        "channel": "widget",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "widget_id": WIDGET_ID,
            "allowed_origins": [ORIGIN],
            "address_requests_per_minute": 10_000,
        },
    }
    config = engine_config(data_dir, [portal.portal_config(linger_ms=5)], [connector], RULES)
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    base = f"{engine.base_url}/widget/{WIDGET_ID}"
    try:
        assert len(engine.actors.widget_logs) == 2, "a widget log actor per node"
        homes: set[str] = set()
        token = ""
        for _ in range(60):  # sessions land on either node: until both made one
            status, body = await fresh_post(f"{base}/session", {})
            assert status == 201, body
            home = body["token"].rpartition("@")[2] if "@" in body["token"] else ""
            homes.add(home)
            token = body["token"] if home else token
            if len(homes) == 2:
                break
        assert len(homes) == 2 and token, f"sessions were made on one node only: {homes}"

        for n in range(1, 4):  # each through whichever node takes the connection
            status, body = await fresh_post(
                f"{base}/messages", {"client_id": f"c-{n}", "text": f"m{n}"}, token
            )
            assert status == 200, body
        await portal.wait_for_events(3, "message.", timeout_s=DEADLINE_S)
        dialog = portal.messages()[0]["dialog"]["id"]
        for n in range(1, 3):
            status, answer = await engine.portal_call(
                portal,
                "POST",
                f"/api/v1/dialogs/{dialog}/messages",
                {"content": {"kind": "text", "text": f"r{n}"}, "operator_id": "anna"},
            )
            assert status == 202, answer
        await portal.wait_for(lambda p: len(p.of_types("reply.sent")) >= 2, timeout_s=DEADLINE_S)
        seen = await live_entries(base, token, 0, 5)
        assert [text_of(e) for e in seen] == ["m1", "m2", "m3", "r1", "r2"], seen
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs))
        for _ in range(4):  # resumed through fresh connections: only what was missed
            again = await live_entries(base, token, seqs[2], 2)
            assert [text_of(e) for e in again] == ["r1", "r2"], again
        received = [e["data"]["content"]["text"] for e in portal.messages()]
        assert received == ["m1", "m2", "m3"], received
    finally:
        await stop_engine(engine)
        await portal.stop()


def main() -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        alive = [node for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]
        assert len(alive) == 2, alive
        asyncio.run(scenario(Path(sys.argv[1])))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("widget cluster: ok")


if __name__ == "__main__":
    main()
