"""Registering portals and connectors at run time, pooled portal actors, rules reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.custom_client import custom_connector, custom_message
from tests.harness import ADMIN_TOKEN, RunningEngine, engine_config, start_engine, stop_engine
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.usefixtures("ray_session")


async def send(engine: RunningEngine, connector: str, chat: str, text: str, seq: int = 1) -> int:
    status, _ = await engine.push_custom([custom_message(chat, seq, text)], connector)
    return status


async def test_portal_and_connector_added_through_the_api_work_without_restart(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    late = PortalStandIn.create("late")
    await late.start()
    engine = await start_engine(engine_config(tmp_path, [portal.portal_config()], []))
    late.engine_public_key_b64 = engine.engine_public_key_b64
    try:
        assert await send(engine, "late-shop", "c", "too early") == 404

        status, body = await engine.admin("PUT", "/admin/v1/portals/late", late.portal_config())
        assert status == 200, body
        status, body = await engine.admin(
            "PUT", "/admin/v1/connectors/late-shop", custom_connector("late-shop", "late")
        )
        assert status == 200, body

        assert await send(engine, "late-shop", "c", "welcome") == 200
        [event] = await late.wait_for_events(1, "message.")
        assert event["data"]["content"]["text"] == "welcome"
        assert [e["type"] for e in late.events] == ["dialog.queued", "message.received"]

        status, body = await engine.admin("GET", "/admin/v1/registry")
        assert status == 200
        assert {p["id"] for p in body["portals"]} == {"acme", "late"}
        assert all(p["license_key"] == "***" for p in body["portals"])

        status, body = await engine.admin("DELETE", "/admin/v1/connectors/late-shop")
        assert status == 200
        assert await send(engine, "late-shop", "c", "gone") == 404
    finally:
        await stop_engine(engine)
        await late.stop()


async def test_admin_refusals(tmp_path: Path, portal: PortalStandIn) -> None:
    engine = await start_engine(engine_config(tmp_path, [portal.portal_config()], []))
    try:
        status, body = await engine.request(
            "GET", "/admin/v1/registry", headers={"Authorization": "Bearer wrong"}
        )
        assert (status, body["error"]) == (401, "bad_signature")
        bad_creds = custom_connector("x", "acme", signing_secret="short")
        status, body = await engine.admin("PUT", "/admin/v1/connectors/x", bad_creds)
        assert status == 422 and "signing_secret" in body["message"]
        status, body = await engine.admin(
            "PUT", "/admin/v1/connectors/y", {**custom_connector("y", "nosuch")}
        )
        assert status == 422 and "unknown portal" in body["message"]
        status, body = await engine.admin(
            "PUT", "/admin/v1/portals/acme", {**portal.portal_config(), "public_key": "bad"}
        )
        assert status == 422
        status, body = await engine.admin("PUT", "/admin/v1/portals/other", portal.portal_config())
        assert status == 422 and "URL" in body["message"]
        status, _ = await engine.request(
            "PUT", "/admin/v1/portals/acme", b"{", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert status == 400
    finally:
        await stop_engine(engine)


async def go_online(engine: RunningEngine, portal: PortalStandIn, operator_id: str) -> None:
    status, body = await engine.portal_call(
        portal, "PUT", f"/api/v1/operators/{operator_id}/status", {"status": "online"}
    )
    assert status == 200, body


def assignments(portal: PortalStandIn) -> list[tuple[str, str]]:
    """(dialog id, operator id) of every dialog.assigned the portal received, in order."""
    return [
        (e["dialog"]["id"], e["data"]["operator_id"]) for e in portal.of_types("dialog.assigned")
    ]


async def test_a_bad_rules_edit_keeps_the_old_rules(tmp_path: Path, portal: PortalStandIn) -> None:
    rules = {
        "acme-support": {
            "portal": "acme",
            "line": "support",
            "queue": {"members": [{"operator": "anna"}], "require_accept": False},
        }
    }
    config = engine_config(tmp_path, [portal.portal_config()], [custom_connector()], rules)
    engine = await start_engine(config)
    portal.engine_public_key_b64 = engine.engine_public_key_b64
    rules_file = config.rules_dir / "acme-support.yaml"
    try:
        rules_file.write_text("portal: acme\nline: support\nqueue:\n  members: []\n")
        status, body = await engine.admin("POST", "/admin/v1/rules/reload")
        assert (status, body["error"]) == (422, "invalid_config")
        assert "acme-support.yaml:4: queue.members" in body["message"]
        assert "version 1 stays in force" in body["message"]
        status, health = await engine.request("GET", "/healthz")
        assert status == 200 and "queue.members" in health["rules_error"]
        assert health["rules_version"] == 1

        await go_online(engine, portal, "anna")
        await go_online(engine, portal, "boris")
        assert await send(engine, "shop", "c1", "hello") == 200
        await portal.wait_for_events(1, "dialog.assigned")
        [first] = portal.messages()
        c1 = first["dialog"]["id"]
        assert assignments(portal) == [(c1, "anna")]

        rules_file.write_text(
            yaml.safe_dump(
                {
                    **rules["acme-support"],
                    "queue": {"members": [{"operator": "boris"}], "require_accept": False},
                }
            )
        )
        status, body = await engine.admin("POST", "/admin/v1/rules/reload")
        assert status == 200 and body["rules_version"] >= 2
        # anna left the line's queue: her dialog returns to it and boris takes it.
        await portal.wait_for_events(2, "dialog.assigned")
        [returned] = portal.of_types("dialog.returned")
        assert returned["dialog"]["id"] == c1
        assert returned["data"] == {"operator_id": "anna", "reason": "removed"}
        assert assignments(portal) == [(c1, "anna"), (c1, "boris")]

        assert await send(engine, "shop", "c2", "hello") == 200
        await portal.wait_for_events(3, "dialog.assigned")
        second = portal.messages()[1]
        assert second["dialog"]["id"] != c1
        assert assignments(portal) == [
            (c1, "anna"),
            (c1, "boris"),
            (second["dialog"]["id"], "boris"),
        ]
        status, health = await engine.request("GET", "/healthz")
        assert health["rules_error"] is None and health["rules_version"] >= 2
    finally:
        await stop_engine(engine)


async def test_pooled_portal_actors_serve_many_portals(tmp_path: Path) -> None:
    portals = [PortalStandIn.create(f"p{n}") for n in range(6)]
    for stand_in in portals:
        await stand_in.start()
    config = engine_config(
        tmp_path,
        [p.portal_config() for p in portals],
        [custom_connector(f"c{n}", f"p{n}") for n in range(6)],
        portal_pool_size=2,
    )
    engine = await start_engine(config)
    try:
        for n, stand_in in enumerate(portals):
            stand_in.engine_public_key_b64 = engine.engine_public_key_b64
            for seq in range(3):
                assert await send(engine, f"c{n}", "chat", f"p{n}/{seq}", seq) == 200
        for n, stand_in in enumerate(portals):
            messages = await stand_in.wait_for_events(3, "message.")
            assert [e["data"]["content"]["text"] for e in messages] == [
                f"p{n}/{s}" for s in range(3)
            ]
            events = stand_in.events
            assert [e["type"] for e in events] == ["dialog.queued"] + ["message.received"] * 3
            assert [e["seq"] for e in events] == [1, 2, 3, 4]
        outboxes = sorted(p.name for p in (config.data_dir / "outbox").glob("*.sqlite3"))
        assert outboxes == ["pool-0-of-2.sqlite3", "pool-1-of-2.sqlite3"]
    finally:
        await stop_engine(engine)
        for stand_in in portals:
            await stand_in.stop()


async def test_portals_added_through_the_api_join_the_pools_actors_change_by_change(
    tmp_path: Path,
) -> None:
    """A pool actor that already runs takes the change that adds its portal and its
    connector (engine/registry.py), not a new copy of the registry, and serves them; one
    started for an added portal takes its part whole, then the changes after it."""
    first, *added = [PortalStandIn.create(f"p{n}") for n in range(5)]
    for stand_in in (first, *added):
        await stand_in.start()
    config = engine_config(
        tmp_path, [first.portal_config()], [custom_connector("c0", "p0")], portal_pool_size=2
    )
    engine = await start_engine(config)
    try:
        for n, stand_in in enumerate(added, start=1):
            status, body = await engine.admin(
                "PUT", f"/admin/v1/portals/p{n}", stand_in.portal_config()
            )
            assert status == 200, body
            status, body = await engine.admin(
                "PUT", f"/admin/v1/connectors/c{n}", custom_connector(f"c{n}", f"p{n}")
            )
            assert status == 200, body
        for n, stand_in in enumerate((first, *added)):
            stand_in.engine_public_key_b64 = engine.engine_public_key_b64
            assert await send(engine, f"c{n}", "chat", f"to p{n}") == 200
        for n, stand_in in enumerate((first, *added)):
            [event] = await stand_in.wait_for_events(1, "message.")
            assert event["data"]["content"]["text"] == f"to p{n}"
        assert sorted(await engine.actors.portal_actors()) == ["pool-0-of-2", "pool-1-of-2"]
    finally:
        await stop_engine(engine)
        for stand_in in (first, *added):
            await stand_in.stop()
