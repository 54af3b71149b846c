"""The router over its SQLite file: dialogs, durable round robin, rule reloads, registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.clock import ManualClock
from engine.config import ConnectorConfig, PortalConfig
from engine.errors import ConfigError
from engine.registry import Registry
from engine.routing.dialog_store import DialogStore
from engine.routing.router import DialogRequest, Router
from engine.security.keys import generate_portal_keypair

RULES = "portal: p1\nline: support\noperators:\n  - id: op-a\n  - id: op-b\n  - id: op-c\n"
SALES = "portal: p1\nline: sales\noperators:\n  - id: op-s1\n  - id: op-s2\n"


def request(key: str, line: str = "support", connector: str = "tg-1") -> DialogRequest:
    return DialogRequest(
        portal_id="p1",
        line_id=line,
        connector_id=connector,
        channel="telegram",
        dialog_key=key,
        customer_id=key,
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "support.yaml").write_text(RULES)
    (directory / "sales.yaml").write_text(SALES)
    return directory


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "router.sqlite3"


class Routers:
    """Routers on one file, as restarts make them; all closed at the end."""

    def __init__(self, db_path: Path, rules_dir: Path, clock: ManualClock) -> None:
        self.db_path, self.rules_dir, self.clock = db_path, rules_dir, clock
        self.stores: list[DialogStore] = []

    def new(self) -> Router:
        store = DialogStore(self.db_path)
        self.stores.append(store)
        return Router(store, self.rules_dir, self.clock)


@pytest.fixture
def routers(db_path: Path, rules_dir: Path):  # type: ignore[no-untyped-def]
    made = Routers(db_path, rules_dir, ManualClock(1_800_000_000.0))
    yield made
    for store in made.stores:
        store.close()


def operators(router: Router, *keys: str, line: str = "support") -> list[str | None]:
    return [d.operator_id for d in router.resolve([request(k, line) for k in keys])]


def test_new_dialogs_go_round_robin_per_line(routers: Routers) -> None:
    router = routers.new()
    assert operators(router, "1", "2") == ["op-a", "op-b"]
    assert operators(router, "s1", line="sales") == ["op-s1"]
    assert operators(router, "3", "4") == ["op-c", "op-a"]
    assert operators(router, "s2", "s3", line="sales") == ["op-s2", "op-s1"]


def test_the_cursor_survives_a_new_router_on_the_same_file(routers: Routers) -> None:
    assert operators(routers.new(), "1", "2") == ["op-a", "op-b"]
    restarted = routers.new()
    assert operators(restarted, "3") == ["op-c"]
    assert operators(routers.new(), "4") == ["op-a"]


def test_an_open_dialog_is_returned_for_the_same_key(routers: Routers) -> None:
    router = routers.new()
    (first,) = router.resolve([request("42")])
    assert first.is_new
    assert first.opened_at == 1_800_000_000.0
    again, other = router.resolve([request("42"), request("43")])
    assert again.dialog_id == first.dialog_id
    assert not again.is_new
    assert again.operator_id == "op-a"
    assert other.operator_id == "op-b"  # the cursor did not move for the known dialog
    restarted = routers.new()
    (after_restart,) = restarted.resolve([request("42")])
    assert after_restart.dialog_id == first.dialog_id
    assert restarted.dialog(first.dialog_id) == after_restart


def test_one_call_opening_a_dialog_twice_opens_it_once(routers: Routers) -> None:
    first, second = routers.new().resolve([request("7"), request("7")])
    assert first.dialog_id == second.dialog_id
    assert (first.is_new, second.is_new) == (True, False)


def test_the_same_key_on_another_connector_is_another_dialog(routers: Routers) -> None:
    router = routers.new()
    (a,) = router.resolve([request("42", connector="tg-1")])
    (b,) = router.resolve([request("42", connector="tg-2")])
    assert a.dialog_id != b.dialog_id


def test_a_line_without_rules_leaves_dialogs_unassigned(routers: Routers) -> None:
    assert operators(routers.new(), "1", line="billing") == [None]


def test_a_failed_resolve_opens_nothing(routers: Routers) -> None:
    router = routers.new()
    bad = DialogRequest("p1", "support", "tg-1", "telegram", "9", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer_id"):
        router.resolve([request("8"), bad])
    assert operators(router, "8") == ["op-a"]  # the cursor moved back with the rollback


def test_bad_rules_at_start_are_refused(db_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "bad"
    rules.mkdir()
    (rules / "support.yaml").write_text("portal: p1\nline: support\noperators: []\n")
    store = DialogStore(db_path)
    try:
        with pytest.raises(ConfigError, match=r"support\.yaml:3: operators"):
            Router(store, rules, ManualClock())
    finally:
        store.close()


def test_a_bad_edit_keeps_the_old_rules_then_a_fix_takes_effect(
    routers: Routers, rules_dir: Path
) -> None:
    router = routers.new()
    version = router.rules.version
    assert router.reload_rules() is False  # nothing changed

    (rules_dir / "support.yaml").write_text(RULES + "  - id: 'op d'\n")
    assert router.reload_rules() is False
    assert router.rules_error is not None
    assert "support.yaml:7: operators.3.id" in router.rules_error
    assert router.rules.version == version
    assert operators(router, "1") == ["op-a"]

    (rules_dir / "support.yaml").write_text(RULES + "  - id: op-d\n")
    assert router.reload_rules() is True
    assert router.rules_error is None
    assert router.rules.version == version + 1
    assert operators(router, "2", "3", "4") == ["op-b", "op-c", "op-d"]


def test_invalid_yaml_in_an_edit_names_the_line_and_keeps_rules(
    routers: Routers, rules_dir: Path
) -> None:
    router = routers.new()
    (rules_dir / "sales.yaml").write_text("portal: p1\nline: sales\noperators: [\n")
    assert router.reload_rules() is False
    assert router.rules_error is not None
    assert "sales.yaml:4: invalid YAML" in router.rules_error
    assert operators(router, "s1", line="sales") == ["op-s1"]


def test_a_second_file_for_the_same_line_is_refused_on_reload(
    routers: Routers, rules_dir: Path
) -> None:
    router = routers.new()
    (rules_dir / "support2.yaml").write_text(RULES)
    assert router.reload_rules() is False
    assert router.rules_error is not None
    assert "support2.yaml: line 'support' of portal 'p1' is already routed by" in (
        router.rules_error
    )
    assert router.rules.for_line("p1", "support") is not None


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(routers: Routers, rules_dir: Path) -> None:
    """File times are only as fine as the kernel's tick: two saves can share one."""
    router = routers.new()
    path = rules_dir / "support.yaml"
    before = path.stat()
    path.write_text(RULES.replace("op-c", "op-x"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert router.reload_rules() is True
    assert operators(router, "1", "2", "3") == ["op-a", "op-b", "op-x"]


def test_a_removed_file_removes_its_line(routers: Routers, rules_dir: Path) -> None:
    router = routers.new()
    (rules_dir / "sales.yaml").unlink()
    assert router.reload_rules() is True
    assert operators(router, "s1", line="sales") == [None]


def test_the_registry_is_stored_whole(db_path: Path) -> None:
    portal = PortalConfig.model_validate(
        {
            "id": "p1",
            "endpoint": "http://127.0.0.1:9/openlines",
            "public_key": generate_portal_keypair()[1],
            "license_key": "license-p1-0123456789",
            "lines": [{"id": "support"}],
        }
    )
    connector = ConnectorConfig(
        id="tg-1", channel="telegram", portal="p1", line="support", credentials={"a": 1}
    )
    registry = Registry().with_portal(portal).with_connector(connector)
    store = DialogStore(db_path)
    store.save_registry(registry)
    store.save_registry(Registry(registry.version + 1, registry.portals, {}))
    store.close()
    reopened = DialogStore(db_path)
    try:
        loaded = reopened.load_registry()
    finally:
        reopened.close()
    assert loaded.version == 3
    assert loaded.portals == {"p1": portal}
    assert loaded.connectors == {}
