"""The registry and rules service the registry host wires: durable versions, a bad or
unreadable rules folder that keeps the rules in force, and a restart that continues."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.config import ConnectorConfig, EngineConfig, parse_engine_config
from engine.errors import ConfigError, NotFoundError
from engine.metrics import Counters
from engine.registry import EdgeRegistry, Registry
from engine.registry_service import RegistryService
from tests.engine.conftest import write_rules

RULES = {"p1-support.yaml": "portal: p1\nline: support\nqueue:\n  members:\n    - operator: a\n"}
PORTAL = {
    "id": "p1",
    "endpoint": "http://127.0.0.1:9/openlines",
    "public_key": "XfFBiOERqjCs7ov2AmYt8Y7uAHZGvPc9H9FI2Ch0h1g",
    "license_key": "license-p1-0123456789",
    "lines": [{"id": "support"}],
}
CONNECTOR = {
    "id": "tg-p1",
    "channel": "telegram",
    "portal": "p1",
    "line": "support",
    "credentials": {"bot_token": "1:x", "secret_token": "s"},
}


@pytest.fixture(autouse=True)
def _rules(tmp_path: Path) -> None:
    write_rules(tmp_path / "rules", RULES)


def config(tmp_path: Path, **overrides: object) -> EngineConfig:
    data = {
        "data_dir": str(tmp_path / "data"),
        "rules_dir": str(tmp_path / "rules"),
        "portals": [PORTAL],
        **overrides,
    }
    parsed = parse_engine_config(data, "test")
    parsed.data_dir.mkdir(parents=True, exist_ok=True)
    return parsed


async def test_changes_are_durable_versions_and_a_restart_continues(tmp_path: Path) -> None:
    first = RegistryService(config(tmp_path), Counters())
    first.open(restarted=False)
    assert first.registry.version == 1 and first.rules.version == 1
    version = await first.put_portal(first.registry.portals["p1"].model_copy(update={"streams": 8}))
    with pytest.raises(NotFoundError):
        await first.delete_connector("nope")
    await first.close()

    again = RegistryService(config(tmp_path), Counters())
    again.open(restarted=True)

    assert again.registry.version == version == 2
    assert again.registry.portals["p1"].streams == 8
    assert again.rules.version == 2  # newer than any snapshot a follower holds


async def test_an_unreadable_rules_file_keeps_the_rules_and_the_next_good_edit_is_taken(
    tmp_path: Path,
) -> None:
    counters = Counters()
    service = RegistryService(config(tmp_path), counters)
    service.open(restarted=False)
    rules_file = tmp_path / "rules" / "p1-support.yaml"
    rules_file.unlink()
    rules_file.mkdir()  # reading it is an OSError

    await service.check_rules_folder()

    assert service.rules.version == 1 and service.rules.lines
    assert service.rules_status()[1] and "p1-support.yaml" in str(service.rules_status()[1])
    rules_file.rmdir()
    write_rules(tmp_path / "rules", RULES)
    await service.check_rules_folder()
    assert service.rules_status() == (2, None)
    await service.close()


async def test_a_restart_with_invalid_rules_serves_the_registry_and_retries(
    tmp_path: Path,
) -> None:
    first = RegistryService(config(tmp_path), Counters())
    first.open(restarted=False)
    await first.close()
    (tmp_path / "rules" / "p1-support.yaml").write_text("portal: p1\nline: [", encoding="utf-8")

    again = RegistryService(config(tmp_path), Counters())
    again.open(restarted=True)

    assert again.registry.portals and again.rules.version == 1 and not again.rules.lines
    assert again.rules_error and "p1-support.yaml" in again.rules_error
    with pytest.raises(ConfigError):
        RegistryService(config(tmp_path), Counters()).open(restarted=False)
    write_rules(tmp_path / "rules", RULES)
    await again.check_rules_folder()
    assert again.rules_status() == (2, None) and again.rules.lines
    await again.close()


async def test_each_portal_actor_follows_only_its_part_of_the_registry(tmp_path: Path) -> None:
    service = RegistryService(config(tmp_path, connectors=[CONNECTOR]), Counters())
    service.open(restarted=False)
    update = await service.hosted_after("portal-p1", -1, 0.0)
    mine = update.applied_to(Registry(-1))
    assert update.whole is not None, "a first follow takes a whole copy"
    assert list(mine.portals) == ["p1"] and list(mine.connectors) == ["tg-p1"]
    nobody = (await service.hosted_after("portal-p9", -1, 0.0)).applied_to(Registry(-1))
    assert nobody.portals == {}

    p2 = service.registry.portals["p1"].model_copy(update={"id": "p2"})
    version = await service.put_portal(p2)
    update = await service.hosted_after("portal-p2", nobody.version, 0.0)
    assert update.whole is None and update.changes[0].portals == (p2,)
    theirs = update.applied_to(nobody)
    assert theirs.version == version and list(theirs.portals) == ["p2"]
    assert theirs.connectors == {}
    update = await service.hosted_after("portal-p1", mine.version, 0.0)
    assert update.changes[0].portals == (), "not its portal: only the version moves"
    assert update.applied_to(mine) == Registry(version, mine.portals, mine.connectors)
    await service.close()


async def test_followers_take_the_changes_since_their_version_and_reach_the_same_copy(
    tmp_path: Path,
) -> None:
    service = RegistryService(config(tmp_path, connectors=[CONNECTOR]), Counters())
    service.open(restarted=False)
    edge = (await service.edge_after(-1, 0.0)).applied_to(EdgeRegistry(-1))
    start = edge.version
    waiting = asyncio.create_task(service.edge_after(edge.version))  # a long poll
    await service.put_portal(service.registry.portals["p1"].model_copy(update={"id": "p2"}))
    update = await waiting
    assert update.whole is None and len(update.changes) == 1
    edge = update.applied_to(edge)
    second = CONNECTOR | {"id": "tg-p2", "portal": "p2"}
    await service.put_connector(ConnectorConfig.model_validate(second))
    await service.delete_connector("tg-p1")

    update = await service.edge_after(edge.version, 0.0)
    assert [c.version for c in update.changes] == [start + 2, start + 3]
    assert update.applied_to(edge) == service.registry.edge()
    behind = await service.edge_after(start - 1, 0.0)
    assert behind.whole == service.registry.edge(), "older than the changes kept: whole"
    assert (await service.edge_after(edge.version + 2, 0.0)).changes == ()
    await service.close()


async def test_changes_are_not_kept_beyond_a_limit_nor_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.registry_service.CHANGES_KEPT", 2)
    service = RegistryService(config(tmp_path), Counters())
    service.open(restarted=False)
    first = service.registry.version
    for index in range(3):
        p = service.registry.portals["p1"].model_copy(update={"id": f"p{index + 2}"})
        await service.put_portal(p)
    assert (await service.edge_after(first, 0.0)).whole is not None, "its first change is gone"
    assert len((await service.edge_after(first + 1, 0.0)).changes) == 2
    await service.close()

    again = RegistryService(config(tmp_path), Counters())
    again.open(restarted=True)
    update = await again.edge_after(first + 1, 0.0)
    assert update.whole == again.registry.edge() and update.version == first + 3
    await again.close()


async def test_admin_changes_at_the_same_time_each_get_a_version(tmp_path: Path) -> None:
    """Each is checked against, and numbered after, the one before: none is lost."""
    service = RegistryService(config(tmp_path), Counters())
    service.open(restarted=False)
    before = service.registry.version
    portals = [
        service.registry.portals["p1"].model_copy(update={"id": f"q{index}"}) for index in range(5)
    ]
    versions = await asyncio.gather(*(service.put_portal(p) for p in portals))
    assert sorted(versions) == list(range(before + 1, before + 6))
    assert {f"q{index}" for index in range(5)} <= set(service.registry.portals)
    await service.close()
