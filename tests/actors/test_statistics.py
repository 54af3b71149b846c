"""Statistics through the running engine: Telegram in, the portal stand-in out, operators'
signed API calls, time on the manual clock. Four dialogs (answered, missed, declined as
spam, transferred to another line and answered there), then ``GET /api/v1/stats`` and
``/metrics``, each figure checked exactly (docs/statistics.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update

pytestmark = pytest.mark.usefixtures("ray_session")

SECRET = "telegram-secret-token"
HOUR = 3600.0


def line(name: str, members: list[str]) -> dict[str, Any]:
    queue = {"members": [{"operator": op} for op in members], "require_accept": False}
    return {"portal": "acme", "line": name, "queue": {**queue, "distribution": "strictly"}}


RULES = {"acme-support": line("support", ["anna", "boris"]), "acme-sales": line("sales", ["chen"])}


def telegram_connector(telegram: TelegramApiStandIn) -> dict[str, Any]:
    credentials = {
        "bot_token": telegram.token,
        "secret_token": SECRET,
        "api_base_url": telegram.base_url,
    }
    return {
        "id": "tg",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": credentials,
    }


async def write(engine: RunningEngine, update_id: int, chat_id: int, text: str) -> None:
    """A customer's Telegram message, acknowledged."""
    chat = {"id": chat_id, "type": "private"}
    sender = {"id": chat_id, "is_bot": False, "first_name": "Ann"}
    message = {"message_id": update_id, "from": sender, "chat": chat, "date": 1, "text": text}
    update = {"update_id": update_id, "message": message}
    result = await post_update(engine.session, engine.hook_url("telegram", "tg"), SECRET, update)
    assert result.status == 200


async def ok(
    engine: RunningEngine, portal: PortalStandIn, method: str, path: str, data: object = None
) -> Any:
    code, body = await engine.portal_call(portal, method, path, data)
    assert code in (200, 201, 202), (method, path, code, body)
    return body


def dialog_of(portal: PortalStandIn, chat: int) -> str:
    [dialog_id] = {
        e["dialog"]["id"] for e in portal.events if e["dialog"]["customer_id"] == str(chat)
    }
    return dialog_id


async def reply(
    engine: RunningEngine, portal: PortalStandIn, dialog_id: str, operator: str, sent: int
) -> None:
    """An operator's reply, once it reached the customer (the ``sent``-th ``reply.sent``)."""
    body = {"content": {"kind": "text", "text": "On it"}, "operator_id": operator}
    await ok(engine, portal, "POST", f"/api/v1/dialogs/{dialog_id}/messages", body)
    await portal.wait_for_events(sent, "reply.sent")


async def stats(
    engine: RunningEngine, portal: PortalStandIn, **query: object
) -> tuple[int, dict[str, Any]]:
    code, body = await engine.portal_call(portal, "GET", f"/api/v1/stats?{urlencode(query)}")
    return code, body


async def test_stats_and_metrics_of_answered_missed_declined_and_transferred_dialogs(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    acme = portal.portal_config(linger_ms=0, lines=[{"id": "support"}, {"id": "sales"}])
    config = engine_config(tmp_path, [acme], [telegram_connector(telegram)], RULES, clock="manual")
    t0 = float(int(time.time()))  # the stand-in checks signatures against real time
    engine = await start_engine(config, clock_start_s=t0)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        for operator in ("anna", "boris", "chen"):
            path = f"/api/v1/operators/{operator}/status"
            await ok(engine, portal, "PUT", path, {"status": "online"})

        # A: answered after 30 s; the customer writes again and waits 20 s for the next.
        await write(engine, 1, 41, "hello")
        await portal.wait_for_events(1, "dialog.assigned")
        answered_id = dialog_of(portal, 41)
        await engine.advance(30)
        await reply(engine, portal, answered_id, "anna", 1)
        await write(engine, 2, 41, "and one more thing")
        await portal.wait_for_events(2, "message.received")
        await engine.advance(20)
        await reply(engine, portal, answered_id, "anna", 2)

        # B: finished without an answer (missed); C: declined as spam (missed too).
        await engine.advance(10)
        await write(engine, 3, 42, "anyone?")
        await write(engine, 4, 43, "cheap pills")
        await portal.wait_for_events(3, "dialog.assigned")
        missed_id, spam_id = dialog_of(portal, 42), dialog_of(portal, 43)
        await ok(
            engine, portal, "POST", f"/api/v1/dialogs/{missed_id}/finish", {"operator_id": "anna"}
        )
        decline = {"operator_id": "anna", "reason": "spam"}
        await ok(engine, portal, "POST", f"/api/v1/dialogs/{spam_id}/decline", decline)

        # D: anna moves it to sales, where chen answers 40 s after it opened.
        await write(engine, 5, 44, "I want to buy")
        await portal.wait_for_events(4, "dialog.assigned")
        moved_id = dialog_of(portal, 44)
        transfer = {"operator_id": "anna", "to_line_id": "sales"}
        await ok(engine, portal, "POST", f"/api/v1/dialogs/{moved_id}/transfer", transfer)
        await portal.wait_for_events(5, "dialog.assigned")
        await engine.advance(40)
        await reply(engine, portal, moved_id, "chen", 3)
        await ok(
            engine, portal, "POST", f"/api/v1/dialogs/{answered_id}/finish", {"operator_id": "anna"}
        )
        await portal.wait_for_events(3, "dialog.closed")

        code, body = await stats(
            engine, portal, **{"from": t0 - HOUR, "to": t0 + HOUR, "bucket": "hour"}
        )
        assert code == 200, body
        assert body["dialogs"] == {
            "received": 4,
            "reopened": 0,
            "assigned": 5,
            "answered": 2,
            "missed": {
                "total": 2,
                "by_reason": {
                    "finished": 1,
                    "auto_closed": 0,
                    "declined": 1,
                    "operator_unavailable": 0,
                },
            },
            "transferred_out": {"to_line": 1, "to_operator": 0},
            "transferred_in": {"to_line": 1, "to_operator": 0},
            "returned": {
                "total": 0,
                "by_reason": {
                    "no_answer": 0,
                    "offline": 0,
                    "away": 0,
                    "end_of_day": 0,
                    "vacation": 0,
                    "removed": 0,
                },
            },
            "declined": {"total": 1, "refused": 0, "spam": 1},
            "closed": {
                "total": 3,
                "by_reason": {
                    "finished": 2,
                    "auto_closed": 0,
                    "declined": 1,
                    "operator_unavailable": 0,
                },
            },
        }
        assert body["first_answer_s"] == {"count": 2, "median": 30.0, "p90": 40.0}
        assert body["further_answer_s"] == {"count": 1, "median": 20.0, "p90": 20.0}
        assert body["ratings"] == {"count": 0, "average": None, "by_score": {}}
        assert (body["from"], body["to"], body["line_id"], body["operator_id"]) == (
            t0 - HOUR,
            t0 + HOUR,
            None,
            None,
        )
        # When each counted fact happened, in seconds after t0 (the clock moved 30, 20,
        # 10, 40): the load series puts each in its UTC hour, whichever hours the run met.
        happened = {
            "received": [0, 60, 60, 60],
            "assigned": [0, 60, 60, 60, 60],
            "answered": [30, 100],
            "missed": [60, 60],
            "closed": [60, 60, 100],
        }
        first_hour = (t0 - HOUR) // HOUR * HOUR
        starts = [first_hour + n * HOUR for n in range(3) if first_hour + n * HOUR < t0 + HOUR]
        assert body["load"] == [
            {
                "start": start,
                **{
                    figure: sum(start <= t0 + at < start + HOUR for at in offsets)
                    for figure, offsets in happened.items()
                },
            }
            for start in starts
        ]

        code, support = await stats(
            engine, portal, **{"from": t0, "to": t0 + HOUR, "line_id": "support"}
        )
        assert code == 200
        assert (support["dialogs"]["received"], support["dialogs"]["answered"]) == (4, 1)
        assert support["dialogs"]["transferred_out"] == {"to_line": 1, "to_operator": 0}
        assert support["first_answer_s"] == {"count": 1, "median": 30.0, "p90": 30.0}
        code, chen = await stats(
            engine,
            portal,
            **{"from": t0, "to": t0 + HOUR, "line_id": "sales", "operator_id": "chen"},
        )
        assert (chen["dialogs"]["assigned"], chen["dialogs"]["answered"]) == (1, 1)
        assert chen["first_answer_s"] == {"count": 1, "median": 40.0, "p90": 40.0}
        code, anna = await stats(
            engine, portal, **{"from": t0, "to": t0 + HOUR, "operator_id": "anna"}
        )
        assert anna["dialogs"]["missed"]["total"] == 2
        assert anna["further_answer_s"]["count"] == 1
        # A range that ends before the replies: the 30 s answer is in, the 40 s one is not.
        code, early = await stats(engine, portal, **{"from": t0, "to": t0 + 31})
        assert (early["dialogs"]["received"], early["first_answer_s"]["count"]) == (1, 1)

        metrics = await engine.metrics()
        events = "openlines_dialog_events_total"
        support, sales = 'line="support",portal="acme"', 'line="sales",portal="acme"'
        counted = {key: value for key, value in metrics.items() if key.startswith(events)}
        assert counted == {
            f'{events}{{line="support",portal="acme",reason="new",type="received"}}': 4.0,
            f'{events}{{line="support",portal="acme",type="assigned"}}': 4.0,
            f'{events}{{line="sales",portal="acme",type="assigned"}}': 1.0,
            f'{events}{{line="support",portal="acme",type="answered"}}': 1.0,
            f'{events}{{line="sales",portal="acme",type="answered"}}': 1.0,
            f'{events}{{line="support",portal="acme",reason="finished",type="closed"}}': 2.0,
            f'{events}{{line="support",portal="acme",reason="declined",type="closed"}}': 1.0,
            f'{events}{{line="support",portal="acme",reason="spam",type="declined"}}': 1.0,
            f'{events}{{line="support",portal="acme",reason="finished",type="missed"}}': 1.0,
            f'{events}{{line="support",portal="acme",reason="declined",type="missed"}}': 1.0,
            f'{events}{{{support},reason="to_line",type="transferred_out"}}': 1.0,
            f'{events}{{{sales},reason="to_line",type="transferred_in"}}': 1.0,
        }
        first = "openlines_first_answer_seconds"
        for line_id, seconds in (("support", 30.0), ("sales", 40.0)):
            labels = f'line="{line_id}",portal="acme"'
            assert metrics[f"{first}_count{{{labels}}}"] == 1.0
            assert metrics[f"{first}_sum{{{labels}}}"] == seconds
            assert metrics[f'{first}_bucket{{le="30.0",{labels}}}'] == (seconds <= 30)
            assert metrics[f'{first}_bucket{{le="60.0",{labels}}}'] == 1.0
        further = 'line="support",portal="acme"'
        assert metrics[f"openlines_answer_seconds_sum{{{further}}}"] == 20.0
        assert metrics[f'openlines_answer_seconds_bucket{{le="15.0",{further}}}'] == 0.0
        assert metrics[f'openlines_answer_seconds_bucket{{le="30.0",{further}}}'] == 1.0

        # Every bad value a clear refusal.
        refusals = [
            ({"from": t0, "to": t0 - 1}, 422, "to: Value error, to ("),
            ({"from": "yesterday", "to": t0}, 422, "from: Value error, 'yesterday' is neither"),
            ({"from": "2026-01-01", "to": "2026-06-01"}, 422, "longer than 92 days"),
            ({"from": t0, "to": t0 + 1, "bucket": "week"}, 422, "bucket: Input should be"),
            ({"from": t0, "to": t0 + 1, "line_id": "billing"}, 404, "has no line 'billing'"),
            ({"to": t0}, 422, "from: Field required"),
            ({"from": t0, "to": t0 + 1, "operator": "anna"}, 422, "operator: Extra inputs"),
        ]
        for query, status, message in refusals:
            code, body = await stats(engine, portal, **query)
            assert code == status and message in body["message"], (query, code, body)
        code, body = await engine.request("GET", f"/api/v1/stats?from={t0}&to={t0 + 1}")
        assert (code, body["error"]) == (401, "bad_signature")
    finally:
        await stop_engine(engine)
