"""Routing through the running engine: Telegram in, the portal stand-in out, time simulated.

A dialog is offered, its offer expires (the timer started when the offer reached the
portal), it passes to the next operator, the engine stops and starts again while that
offer's timer falls due, the offer expires once on start, an operator accepts, goes
offline and the dialog returns to the queue: the portal sees every step in order, each
event stamped with the dialog as it stood there. Then many customers and operators at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.harness import ADMIN_TOKEN, RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update, text_update

pytestmark = pytest.mark.usefixtures("ray_session")

SECRET = "telegram-secret-token"


def rules(**queue: Any) -> dict[str, dict[str, Any]]:
    return {
        "acme-support": {
            "portal": "acme",
            "line": "support",
            "queue": {
                "members": [{"operator": "anna"}, {"operator": "boris"}],
                "distribution": "strictly",
                **queue,
            },
            "capacity": {"max_dialogs_per_operator": 2},
            "timers": {"accept_timeout_s": 60},
            "unavailable": {"offline": {"action": "return", "grace_s": 0}},
        }
    }


def update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return text_update(update_id, chat_id, text, first_name="Ann")


def telegram_connector(telegram: TelegramApiStandIn) -> dict[str, Any]:
    return {
        "id": "tg",
        "channel": "telegram",
        "portal": "acme",
        "line": "support",
        "credentials": {
            "bot_token": telegram.token,
            "secret_token": SECRET,
            "api_base_url": telegram.base_url,
        },
    }


async def write(engine: RunningEngine, update_id: int, chat_id: int) -> None:
    result = await post_update(
        engine.session, engine.hook_url("telegram", "tg"), SECRET, update(update_id, chat_id, "hi")
    )
    assert result.status == 200


async def status(
    engine: RunningEngine, portal: PortalStandIn, operator: str, value: str
) -> dict[str, Any]:
    code, body = await engine.portal_call(
        portal, "PUT", f"/api/v1/operators/{operator}/status", {"status": value}
    )
    assert code == 200, body
    return dict(body)


async def acknowledged(engine: RunningEngine, portal: PortalStandIn) -> None:
    """Until the engine has recorded the portal's answer to every batch it got."""
    await engine.metric_reaches(
        'openlines_batches_delivered_total{portal="acme"}', len(portal.batches)
    )


def steps(portal: PortalStandIn) -> list[tuple[str, Any]]:
    """What the portal saw of its dialogs: the type and who it concerned."""
    seen: list[tuple[str, Any]] = []
    for event in portal.events:
        data = event["data"]
        who = data.get("operator_ids") or data.get("operator_id") or data.get("reason")
        seen.append((event["type"], who))
    return seen


async def test_offer_expiry_restart_accept_and_return_reach_the_portal_in_order(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    config = engine_config(
        tmp_path,
        [portal.portal_config(linger_ms=0)],
        [telegram_connector(telegram)],
        rules(),
        clock="manual",
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    elapsed_s = 0.0
    try:
        await status(engine, portal, "anna", "online")
        await status(engine, portal, "boris", "online")
        await write(engine, 1, 42)
        await portal.wait_for_events(3)
        await engine.advance(59)  # the offer reached the portal: 60 s from then, not before
        elapsed_s += 59
        await asyncio.sleep(0)
        assert steps(portal)[1] == ("dialog.offered", ["anna"])
        assert len(portal.events) == 3  # not expired: 59 s since it reached the portal
        await engine.advance(1)
        elapsed_s += 1
        await portal.wait_for_events(5)
        await acknowledged(engine, portal)  # the engine knows boris saw his offer
    finally:
        await stop_engine(engine, graceful=False)  # as if the process died

    # Back 100 s later on the engine's clock: boris's offer fell due while it was down.
    engine = await start_engine(config, engine.actors.settings.clock_start_s + elapsed_s + 100)
    try:
        await portal.wait_for_events(7)
        dialog_id = portal.events[0]["dialog"]["id"]
        code, body = await engine.portal_call(
            portal, "POST", f"/api/v1/dialogs/{dialog_id}/accept", {"operator_id": "boris"}
        )
        assert code == 409 and "no open offer to 'boris'" in body["message"], body
        code, body = await engine.portal_call(
            portal, "POST", f"/api/v1/dialogs/{dialog_id}/accept", {"operator_id": "anna"}
        )
        assert code == 200 and body["operator_id"] == "anna", body
        await status(engine, portal, "anna", "offline")
        await portal.wait_for_events(10)

        assert steps(portal) == [
            ("dialog.queued", "new"),
            ("dialog.offered", ["anna"]),  # decided at once: nobody waited before it
            ("message.received", None),
            ("dialog.offer_withdrawn", ["anna"]),
            ("dialog.offered", ["boris"]),
            ("dialog.offer_withdrawn", ["boris"]),  # once, on start
            ("dialog.offered", ["anna"]),
            ("dialog.assigned", "anna"),
            ("dialog.returned", "anna"),
            ("dialog.offered", ["boris"]),
        ]
        assert [e["data"].get("reason") for e in portal.of_types("dialog.offer_withdrawn")] == [
            "expired",
            "expired",
        ]
        assert [e["dialog"]["operator_id"] for e in portal.events] == [None] * 7 + [
            "anna",
            None,
            None,
        ]
        assert [e["dialog"]["state"] for e in portal.events][-3:] == [
            "assigned",
            "waiting",
            "offered",
        ]
        assert [e["seq"] for e in portal.events] == list(range(1, 11))

        code, explained = await engine.portal_call(
            portal, "GET", f"/api/v1/dialogs/{dialog_id}/decisions"
        )
        assert code == 200
        latest = explained["decisions"][0]
        assert latest["operator_ids"] == ["boris"]
        assert latest["skipped"] == {"anna": "offline"}
    finally:
        await stop_engine(engine)


async def test_many_customers_and_operators_at_once_never_break_capacity(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    config = engine_config(
        tmp_path,
        [portal.portal_config(linger_ms=5)],
        [telegram_connector(telegram)],
        rules(distribution="all"),
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        await asyncio.gather(
            *(write(engine, 100 + n, 1000 + n) for n in range(12)),
            status(engine, portal, "anna", "online"),
            status(engine, portal, "boris", "online"),
        )
        await portal.wait_for(lambda p: len(p.of_types("dialog.offered")) >= 2)

        async def accept(dialog_id: str, operator: str) -> int:
            code, _ = await engine.portal_call(
                portal, "POST", f"/api/v1/dialogs/{dialog_id}/accept", {"operator_id": operator}
            )
            assert code in (200, 409)
            return code

        tried: set[str] = set()

        def fresh_offers(p: PortalStandIn) -> set[str]:
            return {e["dialog"]["id"] for e in p.of_types("dialog.offered")} - tried

        while len(portal.of_types("dialog.assigned")) < 4:
            await portal.wait_for(
                lambda p: bool(fresh_offers(p)) or len(p.of_types("dialog.assigned")) >= 4
            )
            offered = sorted(fresh_offers(portal))
            tried.update(offered)
            await asyncio.gather(*(accept(d, op) for d in offered for op in ("anna", "boris")))

        assigned = [e["data"]["operator_id"] for e in portal.of_types("dialog.assigned")]
        by_dialog = Counter(e["dialog"]["id"] for e in portal.of_types("dialog.assigned"))
        assert Counter(assigned) == {"anna": 2, "boris": 2}  # capacity 2 each, never more
        assert set(by_dialog.values()) == {1}  # no dialog assigned twice
        code, body = await engine.portal_call(portal, "GET", "/api/v1/lines/support/operators")
        assert code == 200
        loads = {op["operator_id"]: op["load_on_line"] for op in body["operators"]}
        assert loads == {"anna": 2, "boris": 2}
    finally:
        await stop_engine(engine)


async def test_rules_explain_shows_a_running_engines_decisions(
    tmp_path: Path,
    portal: PortalStandIn,
    telegram: TelegramApiStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = engine_config(
        tmp_path, [portal.portal_config()], [telegram_connector(telegram)], rules()
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        await status(engine, portal, "boris", "online")
        await write(engine, 1, 42)
        [offered] = await portal.wait_for_events(1, "dialog.offered")
        dialog_id = offered["dialog"]["id"]
        base = ["rules", "explain", "--engine", engine.base_url, "--admin-token", ADMIN_TOKEN]

        code = await asyncio.to_thread(main, [*base, "--portal", "acme", dialog_id])
        missing = await asyncio.to_thread(main, [*base, "--portal", "acme", "dlg_nope"])

        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"dialog {dialog_id} on line support: offered, operator None" in out
        assert "via queue" in out and "  anna: offline" in out
        assert missing == 1 and "404" in err and "dlg_nope" in err
    finally:
        await stop_engine(engine)
