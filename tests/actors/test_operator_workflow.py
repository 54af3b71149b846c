"""The operator's workflow through the running engine: Telegram in, the portal stand-in out,
signed API calls, time on the engine's manual clock moved through the admin API.

One dialog travels through everything an operator does to it: a transfer to an operator,
an invited colleague and a silent supervisor, a transfer to another line, the history read
page by page, a finish, a refused late reply, and the customer reopening it. Then a spam
decline with a block, and another portal that can touch none of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn, post_update, text_update

pytestmark = pytest.mark.usefixtures("ray_session")

SECRET = "telegram-secret-token"


def line(name: str, members: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "portal": "acme",
        "line": name,
        "queue": {
            "members": [{"operator": op} for op in members],
            "distribution": "strictly",
            "require_accept": False,
        },
        **extra,
    }


RULES = {
    "acme-support": line("support", ["anna", "boris"]),
    "acme-sales": line("sales", ["chen"], reopen_within_s=100),
}


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


def acme_config(portal: PortalStandIn) -> dict[str, Any]:
    return portal.portal_config(linger_ms=0, lines=[{"id": "support"}, {"id": "sales"}])


async def write(engine: RunningEngine, update_id: int, chat_id: int, text: str) -> None:
    update = text_update(update_id, chat_id, text, first_name="Ann")
    result = await post_update(engine.session, engine.hook_url("telegram", "tg"), SECRET, update)
    assert result.status == 200


async def ok(
    engine: RunningEngine, portal: PortalStandIn, method: str, path: str, data: object = None
) -> Any:
    code, body = await engine.portal_call(portal, method, path, data)
    assert code in (200, 201, 202), (method, path, code, body)
    return body


def of_dialog(portal: PortalStandIn, dialog_id: str) -> list[dict[str, Any]]:
    return [e for e in portal.events if e["dialog"]["id"] == dialog_id]


def steps(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The type of each event and who or what it concerned."""
    seen = []
    for event in events:
        data = event["data"]
        who = (
            data.get("to_operator_id")
            or data.get("operator_id")
            or data.get("operator_ids")
            or data.get("reason")
        )
        seen.append((event["type"], who))
    return seen


async def test_a_dialog_through_transfers_participants_history_finish_and_reopening(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    config = engine_config(
        tmp_path, [acme_config(portal)], [telegram_connector(telegram)], RULES, clock="manual"
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        for operator in ("anna", "boris", "chen"):
            await ok(
                engine, portal, "PUT", f"/api/v1/operators/{operator}/status", {"status": "online"}
            )
        await ok(engine, portal, "PUT", "/api/v1/operators/sup/profile", {"display_name": "Sam"})
        await ok(
            engine, portal, "PUT", "/api/v1/operators/boris/profile", {"display_name": "Boris"}
        )
        await write(engine, 1, 42, "hi")
        [assigned] = await portal.wait_for_events(1, "dialog.assigned")
        dialog_id = assigned["dialog"]["id"]
        base = f"/api/v1/dialogs/{dialog_id}"

        view = await ok(
            engine,
            portal,
            "POST",
            f"{base}/transfer",
            {"operator_id": "anna", "to_operator_id": "boris"},
        )
        assert (view["operator_id"], view["state"]) == ("boris", "assigned")
        view = await ok(
            engine, portal, "POST", f"{base}/invite", {"operator_id": "boris", "invitee_id": "anna"}
        )
        view = await ok(engine, portal, "POST", f"{base}/join", {"operator_id": "sup"})
        assert view["participants"] == [
            {"operator_id": "anna", "role": "invited"},
            {"operator_id": "sup", "role": "supervisor"},
        ]
        code, body = await engine.portal_call(
            portal,
            "POST",
            f"{base}/messages",
            {"content": {"kind": "text", "text": "psst"}, "operator_id": "sup"},
        )
        assert code == 409 and body["error"] == "silent_participant", body
        await ok(
            engine,
            portal,
            "POST",
            f"{base}/messages",
            {"content": {"kind": "text", "text": "Hello from Anna"}, "operator_id": "anna"},
        )
        await ok(
            engine,
            portal,
            "POST",
            f"{base}/messages",
            {"content": {"kind": "text", "text": "Boris here"}},
        )
        await ok(engine, portal, "POST", f"{base}/leave", {"operator_id": "anna"})
        view = await ok(
            engine,
            portal,
            "POST",
            f"{base}/transfer",
            {"operator_id": "boris", "to_line_id": "sales"},
        )
        assert view["line_id"] == "sales"
        await portal.wait_for(
            lambda p: steps(of_dialog(p, dialog_id))[-1] == ("dialog.assigned", "chen")
        )
        await portal.wait_for_events(2, "reply.")

        # Reply outcomes join the stream when the channel answers: checked apart.
        dialog_steps = [s for s in steps(of_dialog(portal, dialog_id)) if s[0] != "reply.sent"]
        assert dialog_steps == [
            ("dialog.queued", "new"),
            ("dialog.assigned", "anna"),
            ("message.received", None),
            ("dialog.transferred", "boris"),
            ("dialog.assigned", "boris"),
            ("dialog.participant_joined", "anna"),
            ("dialog.participant_joined", "sup"),
            ("dialog.answered", "boris"),  # anna's reply did not: she is invited
            ("dialog.participant_left", "anna"),
            ("dialog.transferred", "operator"),
            ("dialog.queued", "transferred"),
            ("dialog.assigned", "chen"),
        ]
        texts = [call.params["text"] for call in telegram.calls_to("sendMessage")]
        assert texts == ["Hello from Anna", "Boris: Boris here"]  # anna set no display name
        transferred = [
            e["data"] for e in of_dialog(portal, dialog_id) if e["type"] == "dialog.transferred"
        ]
        assert transferred == [
            {
                "from_line": "support",
                "to_line": "support",
                "reason": "operator",
                "from_operator_id": "anna",
                "to_operator_id": "boris",
                "by": "anna",
            },
            {
                "from_line": "support",
                "to_line": "sales",
                "reason": "operator",
                "from_operator_id": "boris",
                "to_operator_id": None,
                "by": "boris",
            },
        ]

        delivered = [e["id"] for e in of_dialog(portal, dialog_id)]
        paged: list[str] = []
        path = f"{base}/history?limit=4"
        while True:
            page = await ok(engine, portal, "GET", path)
            paged += [e["id"] for e in page["events"]]
            if page["next_after"] is None:
                break
            path = f"{base}/history?limit=4&after={page['next_after']}"
        assert paged == delivered
        assert page["dialog"]["operator_id"] == "chen"

        await ok(engine, portal, "POST", f"{base}/finish", {"operator_id": "chen"})
        code, body = await engine.portal_call(
            portal, "POST", f"{base}/messages", {"content": {"kind": "text", "text": "late"}}
        )
        assert (code, body) == (
            409,
            {
                "error": "dialog_closed",
                "message": f"dialog {dialog_id!r} is closed (finished): the customer writes first",
            },
        )

        # The portal stand-in checks signature times against real time: the test moves the
        # engine's clock less than its 300 s tolerance in all.
        await engine.advance(99)  # sales reopens within 100 s of the finish
        await write(engine, 2, 42, "one more thing")
        [reopened] = await portal.wait_for_events(1, "dialog.reopened")
        assert reopened["dialog"]["id"] == dialog_id
        assert reopened["data"]["closed_reason"] == "finished"
        await portal.wait_for(
            lambda p: steps(of_dialog(p, dialog_id))[-1] == ("message.received", None)
        )
        assert steps(of_dialog(portal, dialog_id))[-5:] == [
            ("dialog.closed", "chen"),
            ("dialog.reopened", None),
            ("dialog.queued", "reopened"),
            ("dialog.assigned", "chen"),  # its last operator
            ("message.received", None),
        ]
        assert len(portal.of_types("dialog.queued")) == 3  # new, transferred, reopened: one dialog

        await ok(engine, portal, "POST", f"{base}/finish", {"operator_id": "chen"})
        await engine.advance(101)
        await write(engine, 3, 42, "and another")
        [_, _, _, fresh] = await portal.wait_for_events(4, "dialog.queued")
        assert fresh["data"]["reason"] == "new"  # too late to reopen: a new dialog
        assert fresh["dialog"]["id"] != dialog_id
    finally:
        await stop_engine(engine)


async def test_spam_blocks_quick_answers_queues_and_another_portal_touches_none_of_it(
    tmp_path: Path, portal: PortalStandIn, telegram: TelegramApiStandIn
) -> None:
    other = PortalStandIn.create("other")
    await other.start()
    rules = {"acme-support": line("support", ["anna"], capacity={"max_dialogs_per_operator": 1})}
    config = engine_config(
        tmp_path,
        [acme_config(portal), other.portal_config(linger_ms=0)],
        [telegram_connector(telegram)],
        rules,
    )
    engine = await start_engine(config)
    portal.engine_public_key_b64 = other.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        await ok(engine, portal, "PUT", "/api/v1/operators/anna/status", {"status": "online"})
        await write(engine, 1, 66, "buy cheap pills")
        [assigned] = await portal.wait_for_events(1, "dialog.assigned")
        spam_id = assigned["dialog"]["id"]
        base = f"/api/v1/dialogs/{spam_id}"

        # Another portal: the dialog does not exist for it, whatever it tries.
        unknown = f"no dialog {spam_id!r} for portal 'other': the customer writes first"
        for method, path, data in [
            ("POST", f"{base}/decline", {"reason": "spam", "block": True}),
            ("POST", f"{base}/transfer", {"to_line_id": "support"}),
            ("GET", f"{base}/history", None),
        ]:
            code, body = await engine.portal_call(other, method, path, data)
            assert (code, body) == (404, {"error": "not_found", "message": unknown}), path
        code, body = await engine.portal_call(other, "GET", "/api/v1/lines/sales/queue")
        assert (code, body["error"]) == (404, "not_found")

        code, body = await engine.portal_call(
            portal, "POST", f"{base}/transfer", {"to_line_id": "sales", "to_operator_id": "anna"}
        )
        assert (code, body["error"]) == (422, "invalid_payload")
        assert "exactly one of to_operator_id or to_line_id" in body["message"]
        code, body = await engine.portal_call(
            portal, "POST", f"{base}/pin", {"dialog_id": "dlg_someone_elses"}
        )
        assert (code, body["error"]) == (422, "invalid_payload")

        view = await ok(
            engine,
            portal,
            "POST",
            f"{base}/decline",
            {"operator_id": "anna", "reason": "spam", "customer_text": "Goodbye.", "block": True},
        )
        assert view["state"] == "closed"
        [closed] = await portal.wait_for_events(1, "dialog.closed")
        assert closed["data"]["decline"] == {"spam": True, "customer_told": True, "blocked": True}
        await portal.wait_for_events(1, "reply.")
        assert [c.params["text"] for c in telegram.calls_to("sendMessage")] == ["Goodbye."]

        await write(engine, 2, 66, "hello?")
        await write(engine, 3, 66, "hello??")
        await engine.metric_reaches('openlines_blocked_messages_total{portal="acme"}', 2)
        history = await ok(engine, portal, "GET", f"{base}/history")
        assert [(e["type"], e["delivered"]) for e in history["events"]][-2:] == [
            ("message.received", False),
            ("message.received", False),
        ]
        assert [e["data"]["content"]["text"] for e in history["events"][-2:]] == [
            "hello?",
            "hello??",
        ]
        code, body = await engine.portal_call(other, "DELETE", "/api/v1/customers/tg/66/block")
        assert (code, body["error"]) == (404, "not_found")
        unblocked = await ok(
            engine, portal, "DELETE", "/api/v1/customers/tg/66/block?operator_id=anna"
        )
        assert (unblocked["dialog_id"], unblocked["messages"]) == (spam_id, 2)
        [event] = await portal.wait_for_events(1, "customer.unblocked")
        assert event["data"]["by"] == "anna"
        assert len(portal.of_types("message.")) == 1  # the kept ones were never delivered

        # Quick answers: kept per portal and line, used in a reply.
        created = await ok(
            engine,
            portal,
            "POST",
            "/api/v1/lines/support/quick-answers",
            {"title": "Welcome", "text": "Welcome back, {customer_name}!"},
        )
        listed = await ok(engine, other, "GET", "/api/v1/lines/support/quick-answers")
        assert listed == {"line_id": "support", "quick_answers": []}
        await write(engine, 4, 66, "sorry, real question")
        await portal.wait_for_events(2, "dialog.assigned")
        dialog_id = portal.of_types("dialog.assigned")[-1]["dialog"]["id"]
        await ok(
            engine,
            portal,
            "POST",
            f"/api/v1/dialogs/{dialog_id}/messages",
            {"quick_answer_id": created["id"], "operator_id": "anna"},
        )
        await portal.wait_for_events(2, "reply.")
        assert telegram.calls_to("sendMessage")[-1].params["text"] == "Welcome back, Ann!"
        await ok(
            engine,
            portal,
            "PUT",
            f"/api/v1/quick-answers/{created['id']}",
            {"title": "Welcome", "text": "Hi!"},
        )
        code, _ = await engine.portal_call(
            other, "DELETE", f"/api/v1/quick-answers/{created['id']}"
        )
        assert code == 404
        answers = await ok(engine, portal, "GET", "/api/v1/lines/support/quick-answers")
        assert [a["text"] for a in answers["quick_answers"]] == ["Hi!"]
        await ok(engine, portal, "DELETE", f"/api/v1/quick-answers/{created['id']}")

        # anna holds one dialog, her capacity: the next customer waits in the queue.
        await write(engine, 5, 77, "anyone?")
        await portal.wait_for_events(3, "dialog.queued")
        queue = await ok(engine, portal, "GET", "/api/v1/lines/support/queue")
        assert [(w["position"], w["dialog"]["customer_id"]) for w in queue["waiting"]] == [
            (1, "77")
        ]
        mine = await ok(engine, portal, "GET", "/api/v1/operators/anna/dialogs")
        assert [(d["role"], d["dialog"]["id"]) for d in mine["dialogs"]] == [
            ("operator", dialog_id)
        ]
        code, body = await engine.portal_call(portal, "GET", "/api/v1/operators/nobody/dialogs")
        assert (code, body["error"]) == (404, "not_found")
    finally:
        await stop_engine(engine)
        await other.stop()
