"""The benchmark sink, in-process: real sealed and signed batches, no Ray."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.sink import SINK, LatencyHistogram, SinkClient, make_app, write_keys
from engine.security.keys import ed25519_public_to_b64, generate_portal_keypair
from engine.security.sealing import seal_and_sign, x25519_public_from_b64

PORTALS = ("alpha", "beta")
Client = TestClient[web.Request, web.Application]


@dataclass
class Keys:
    engine: Ed25519PrivateKey
    private: dict[str, str]
    public: dict[str, str]

    @property
    def engine_public(self) -> str:
        return ed25519_public_to_b64(self.engine.public_key())


@pytest.fixture
def keys() -> Keys:
    pairs = {portal_id: generate_portal_keypair() for portal_id in PORTALS}
    return Keys(
        Ed25519PrivateKey.generate(),
        {pid: pair[0] for pid, pair in pairs.items()},
        {pid: pair[1] for pid, pair in pairs.items()},
    )


@pytest.fixture
async def client(keys: Keys) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(keys.private, keys.engine_public))) as test_client:
        yield test_client


def dialog_view(dialog: str, state: str = "waiting") -> dict[str, Any]:
    return {
        "id": f"dlg_{dialog}",
        "line_id": "support",
        "connector_id": "shop",
        "channel": "custom",
        "customer_id": f"cust-{dialog}",
        "state": state,
        "operator_id": "anna" if state == "assigned" else None,
        "offered_to": [],
    }


def dialog_event(
    number: int, dialog: str, kind: str, seq: int, data: dict[str, Any]
) -> dict[str, Any]:
    """An event the engine makes about a dialog (``dialog.queued``, ``dialog.assigned``)."""
    state = "assigned" if kind == "dialog.assigned" else "waiting"
    return {
        "id": f"evt_{number}",
        "seq": seq,
        "type": kind,
        "best_effort": False,
        "occurred_at": time.time(),
        "dialog": dialog_view(dialog, state),
        "data": data,
    }


def queued(number: int, dialog: str, seq: int) -> dict[str, Any]:
    return dialog_event(
        number, dialog, "dialog.queued", seq, {"reason": "new", "position": 1, "opens_at": None}
    )


def event(
    number: int, dialog: str, order_key: int, seq: int | None, sent_ns: int | None = None
) -> dict[str, Any]:
    text = f"message {number}" if sent_ns is None else f"lt={sent_ns} message {number}"
    return {
        "id": f"evt_{number}",
        "seq": seq,
        "type": "message.received",
        "best_effort": False,
        "occurred_at": time.time(),
        "dialog": dialog_view(dialog),
        "data": {
            "dialog_key": dialog,
            "channel_event_id": str(order_key),
            "order_key": order_key,
            "content": {"kind": "text", "text": text},
        },
    }


_batch_numbers: Iterator[int] = iter(range(1, 10**9))


def delivery(
    keys: Keys,
    portal_id: str,
    events: list[dict[str, Any]],
    batch_id: str | None = None,
    stream: int = 0,
) -> tuple[dict[str, str], bytes]:
    batch_id = batch_id or f"bat_{next(_batch_numbers)}"
    plaintext = orjson.dumps(
        {"portal_id": portal_id, "batch_id": batch_id, "stream": stream, "events": events}
    )
    public = x25519_public_from_b64(keys.public[portal_id])
    return seal_and_sign(portal_id, batch_id, plaintext, public, keys.engine, int(time.time()))


async def post(client: Client, keys: Keys, portal_id: str, events: list[dict[str, Any]]) -> int:
    headers, body = delivery(keys, portal_id, events)
    response = await client.post(f"/p/{portal_id}", data=body, headers=headers)
    return response.status


async def stats(client: Client, per_portal: bool = False) -> dict[str, Any]:
    response = await client.get("/stats?per_portal=1" if per_portal else "/stats")
    assert response.status == 200
    result: dict[str, Any] = await response.json()
    return result


async def test_counts_events_per_portal_and_latency_from_the_stamp(
    client: Client, keys: Keys
) -> None:
    sent_ns = time.monotonic_ns() - 5_000_000  # written 5 ms ago
    alpha = [event(i, "a", i, i, sent_ns) for i in range(1, 4)]
    beta = [event(100 + i, "b", i, i, sent_ns) for i in range(1, 3)]

    assert await post(client, keys, "alpha", alpha) == 204
    assert await post(client, keys, "beta", beta) == 204

    result = await stats(client, per_portal=True)
    assert result["events"] == result["messages"] == 5
    assert result["batches"] == 2
    assert result["per_portal"] == result["per_portal_messages"] == {"alpha": 3, "beta": 2}
    assert result["duplicates"] == result["order_violations"] == result["seq_problems"] == 0
    latency = result["latency_ms"]
    assert latency["count"] == 5
    assert 5.0 <= latency["p50"] <= latency["max"] < 5_000
    assert result["first_event_ns"] <= result["last_event_ns"] <= time.monotonic_ns()
    assert "per_portal" not in await stats(client)


async def test_a_redelivered_event_is_a_duplicate_not_a_new_event(
    client: Client, keys: Keys
) -> None:
    events = [event(i, "a", i, i) for i in range(1, 4)]
    assert await post(client, keys, "alpha", events) == 204
    assert await post(client, keys, "alpha", events[1:]) == 204  # a retried batch, in part

    result = await stats(client)
    assert (result["events"], result["duplicates"], result["batches"]) == (3, 2, 2)
    assert (result["messages"], result["message_duplicates"]) == (3, 2)
    assert result["seq_problems"] == result["order_violations"] == 0
    assert result["unstamped"] == 3


async def test_dialog_events_are_checked_in_order_but_are_not_messages(
    client: Client, keys: Keys
) -> None:
    sent_ns = time.monotonic_ns()
    stream = [
        queued(1, "a", 1),
        event(2, "a", 10, 2, sent_ns),
        dialog_event(3, "a", "dialog.assigned", 3, {"operator_id": "anna", "via": "direct"}),
        event(4, "a", 11, 4, sent_ns),
    ]
    assert await post(client, keys, "alpha", stream) == 204
    assert await post(client, keys, "alpha", stream[2:]) == 204  # a retried batch, in part

    result = await stats(client, per_portal=True)
    assert (result["events"], result["duplicates"]) == (4, 2)
    assert (result["messages"], result["message_duplicates"]) == (2, 1)
    assert result["per_portal"] == {"alpha": 4} and result["per_portal_messages"] == {"alpha": 2}
    assert result["event_types"] == {
        "dialog.queued": 1,
        "message.received": 2,
        "dialog.assigned": 1,
    }  # new events only: the redelivered ones are not counted again
    assert (result["unstamped"], result["latency_ms"]["count"]) == (0, 2)
    assert result["seq_problems"] == result["order_violations"] == 0


async def test_a_missing_dialog_event_is_a_seq_hole(client: Client, keys: Keys) -> None:
    assert await post(client, keys, "alpha", [queued(1, "a", 1), event(2, "a", 1, 2)]) == 204
    assert await post(client, keys, "alpha", [event(4, "a", 2, 4)]) == 204  # seq 3 never came

    result = await stats(client)
    assert (result["seq_holes"], result["seq_problems"]) == (1, 1)
    assert result["messages"] == 2


async def test_a_dialog_queued_after_its_dialogs_messages_is_out_of_order(
    client: Client, keys: Keys
) -> None:
    events = [event(1, "a", 1, 1), queued(2, "a", 2), queued(3, "b", 3), event(4, "b", 1, 4)]
    assert await post(client, keys, "alpha", events) == 204
    transferred = dialog_event(
        5, "b", "dialog.queued", 5, {"reason": "transferred", "position": 1, "opens_at": None}
    )
    assert await post(client, keys, "alpha", [transferred]) == 204  # queued again: in order

    result = await stats(client)
    assert result["order_violations"] == 1
    assert result["seq_problems"] == 0


async def test_the_same_event_id_in_two_portals_is_not_a_duplicate(
    client: Client, keys: Keys
) -> None:
    assert await post(client, keys, "alpha", [event(1, "a", 1, 1)]) == 204
    assert await post(client, keys, "beta", [event(1, "a", 1, 1)]) == 204
    result = await stats(client)
    assert (result["events"], result["duplicates"]) == (2, 0)


async def test_order_violations_are_counted_per_dialog(client: Client, keys: Keys) -> None:
    # Dialog a: 10, 30, 20 (one decrease). Dialog b interleaved and in order.
    events = [
        event(1, "a", 10, 1),
        event(2, "b", 5, 2),
        event(3, "a", 30, 3),
        event(4, "b", 6, 4),
        event(5, "a", 20, 5),
    ]
    assert await post(client, keys, "alpha", events) == 204
    # The same dialog key in another portal is another dialog.
    assert await post(client, keys, "beta", [event(6, "a", 1, 1)]) == 204
    assert (await stats(client))["order_violations"] == 1


async def test_seq_gaps_and_regressions(client: Client, keys: Keys) -> None:
    assert await post(client, keys, "alpha", [event(1, "a", 1, 1), event(2, "a", 2, 2)]) == 204
    assert await post(client, keys, "alpha", [event(3, "a", 3, 4)]) == 204  # 3 skipped
    assert await post(client, keys, "beta", [event(4, "b", 1, 2), event(5, "b", 2, 1)]) == 204

    result = await stats(client)
    assert result["seq_holes"] == 1
    assert result["seq_regressions"] == 1
    assert result["seq_problems"] == 2


async def test_parallel_streams_fill_each_others_numbers(client: Client, keys: Keys) -> None:
    for stream, numbers in ((0, (1, 3, 5)), (1, (2, 4))):
        headers, body = delivery(
            keys, "alpha", [event(n, f"d{stream}", n, n) for n in numbers], stream=stream
        )
        assert (await client.post("/p/alpha", data=body, headers=headers)).status == 204
    assert (await stats(client))["seq_problems"] == 0


async def test_a_down_portal_gets_503_and_nothing_is_counted(client: Client, keys: Keys) -> None:
    assert (await client.post("/down/alpha?retry_after_s=2")).status == 204
    headers, body = delivery(keys, "alpha", [event(1, "a", 1, 1)])
    refused = await client.post("/p/alpha", data=body, headers=headers)
    assert (refused.status, refused.headers["Retry-After"]) == (503, "2")
    assert await post(client, keys, "beta", [event(2, "b", 1, 1)]) == 204

    result = await stats(client, per_portal=True)
    assert result["per_portal"] == {"beta": 1}
    assert result["refused"]["down"] == 1

    assert (await client.post("/up/alpha")).status == 204
    assert (await client.post("/p/alpha", data=body, headers=headers)).status == 204
    assert (await stats(client))["events"] == 2


async def test_refuses_forged_misaddressed_and_unknown(client: Client, keys: Keys) -> None:
    forger = Keys(Ed25519PrivateKey.generate(), keys.private, keys.public)
    headers, body = delivery(forger, "alpha", [event(1, "a", 1, 1)])
    forged = await client.post("/p/alpha", data=body, headers=headers)
    assert forged.status == 401
    assert "v1a" in await forged.text()

    headers, body = delivery(keys, "alpha", [event(2, "a", 1, 1)])
    misaddressed = await client.post("/p/beta", data=body, headers=headers)
    assert misaddressed.status == 401

    headers, body = delivery(keys, "alpha", [event(3, "a", 1, 1)])
    unknown = await client.post("/p/gamma", data=body, headers=headers)
    assert unknown.status == 404

    result = await stats(client)
    assert (result["events"], result["rejected"], result["refused"]["unknown_portal"]) == (0, 2, 1)


async def test_reset_clears_counts_and_keeps_keys(client: Client, keys: Keys) -> None:
    events = [event(1, "a", 1, 1, time.monotonic_ns())]
    assert await post(client, keys, "alpha", events) == 204
    assert (await client.post("/reset")).status == 204
    result = await stats(client)
    assert (result["events"], result["batches"], result["latency_ms"]["count"]) == (0, 0, 0)
    assert result["first_event_ns"] is None
    # Keys kept; the seen ids were forgotten, so the same event counts as new again.
    assert await post(client, keys, "alpha", events) == 204
    assert (await stats(client))["events"] == 1


async def test_engine_key_given_later_by_post_or_by_reloading_the_file(
    keys: Keys, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, None, keys.private)
    app = make_app(keys.private, None, keys_file)
    async with TestClient(TestServer(app)) as test_client:
        assert await post(test_client, keys, "alpha", [event(1, "a", 1, 1)]) == 503

        bad = await test_client.post("/keys", data=orjson.dumps({"engine_public_key": "x"}))
        assert bad.status == 400
        given = orjson.dumps({"engine_public_key": keys.engine_public})
        assert (await test_client.post("/keys", data=given)).status == 204
        assert await post(test_client, keys, "alpha", [event(2, "a", 2, 2)]) == 204

        rotated = Keys(Ed25519PrivateKey.generate(), keys.private, keys.public)
        write_keys(keys_file, rotated.engine_public, keys.private)
        assert (await test_client.post("/keys")).status == 204
        assert await post(test_client, keys, "alpha", [event(3, "a", 3, 3)]) == 401
        assert await post(test_client, rotated, "alpha", [event(4, "a", 4, 4)]) == 204

        sink = app[SINK]
        assert (sink.events, sink.refused["no_engine_key"], sink.rejected) == (2, 1, 1)


def test_latency_histogram_percentiles_within_one_percent() -> None:
    histogram = LatencyHistogram()
    values_us = [7, 250, *range(1_000, 101_000, 100), 3_000_000]
    for value in values_us:
        histogram.add(value)
    ordered = sorted(values_us)
    for fraction in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(fraction * len(ordered)) - 1]
        assert histogram.percentile_us(fraction) == pytest.approx(exact, rel=0.01)
    summary = histogram.summary_ms()
    assert (summary["max"], summary["count"]) == (3000.0, len(values_us))
    assert histogram.percentile_us(0.0001) == 7


async def test_portal_keys_must_be_a_map(client: Client) -> None:
    refused = await client.post("/keys", data=orjson.dumps({"portals": ["alpha"]}))
    assert refused.status == 400
    assert "portals" in await refused.text()
    assert (await client.post("/keys")).status == 400  # no keys file to reload


async def test_sink_client_drives_the_sink_as_a_subprocess(keys: Keys, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, None, keys.private)
    sink = SinkClient()
    await sink.start(0, keys_file)
    try:
        async with aiohttp.ClientSession() as session:

            async def deliver(number: int) -> int:
                headers, body = delivery(keys, "beta", [event(number, "b", number, number)])
                async with session.post(sink.endpoint("beta"), data=body, headers=headers) as r:
                    return r.status

            assert await deliver(1) == 503  # the engine key is not known yet
            await sink.set_engine_key(keys.engine_public)
            assert await deliver(1) == 204
            await sink.down("beta")
            assert await deliver(2) == 503
            await sink.up("beta")
            assert await deliver(2) == 204
            result = await sink.wait_for_events(2, timeout_s=5)
            assert (result["events"], result["refused"]["down"]) == (2, 1)
            assert (await sink.stats(per_portal=True))["per_portal"] == {"beta": 2}
            await sink.reset()
            assert (await sink.stats())["events"] == 0
    finally:
        await sink.stop()
    assert sink.process is not None and sink.process.returncode == 0
