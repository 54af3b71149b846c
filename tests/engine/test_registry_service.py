"""The registry and rules service the registry actor wires: durable versions, a bad or
unreadable rules folder that keeps the rules in force, and a restart that continues."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import EngineConfig, parse_engine_config
from engine.errors import ConfigError, NotFoundError
from engine.metrics import Counters
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
    connector = {
        "id": "tg-p1",
        "channel": "telegram",
        "portal": "p1",
        "line": "support",
        "credentials": {"bot_token": "1:x", "secret_token": "s"},
    }
    service = RegistryService(config(tmp_path, connectors=[connector]), Counters())
    service.open(restarted=False)
    mine = await service.hosted_after("portal-p1", -1, 0.0)
    assert list(mine.portals) == ["p1"] and list(mine.connectors) == ["tg-p1"]
    assert (await service.hosted_after("portal-p9", -1, 0.0)).portals == {}

    p2 = service.registry.portals["p1"].model_copy(update={"id": "p2"})
    version = await service.put_portal(p2)
    theirs = await service.hosted_after("portal-p2", mine.version, 0.0)
    assert theirs.version == version and list(theirs.portals) == ["p2"]
    assert theirs.connectors == {}
    assert list((await service.hosted_after("portal-p1", -1, 0.0)).portals) == ["p1"]
    await service.close()
