"""The registry's durable copy (``engine.store.sqlite_registry``) on a real file."""

from __future__ import annotations

from pathlib import Path

from engine.config import ConnectorConfig, PortalConfig
from engine.registry import Registry
from engine.security.keys import generate_portal_keypair
from engine.store.sqlite_registry import RegistryStore


def test_the_registry_is_stored_whole_and_then_change_by_change(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
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
    registry = Registry(1, {"p1": portal}, {})
    store = RegistryStore(path)
    store.save_registry(registry)
    added = registry.put_connector(connector)
    store.save_change(added)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # the store's own connection
    store.save_change(registry.changed(added).remove_connector("tg-1"))
    store.close()
    assert not [s for s in statements if "'portal'" in s], "a change writes its own rows only"
    reopened = RegistryStore(path)
    try:
        loaded = reopened.load_registry()
    finally:
        reopened.close()
    assert loaded.version == 3
    assert loaded.portals == {"p1": portal}
    assert loaded.connectors == {}


def test_an_empty_file_is_an_empty_registry(tmp_path: Path) -> None:
    store = RegistryStore(tmp_path / "registry.sqlite3")
    try:
        assert store.load_registry() == Registry()
    finally:
        store.close()
