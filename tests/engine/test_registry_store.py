"""The registry's durable copy (``engine.store.sqlite_registry``) on a real file."""

from __future__ import annotations

from pathlib import Path

from engine.config import ConnectorConfig, PortalConfig
from engine.registry import Registry
from engine.security.keys import generate_portal_keypair
from engine.store.sqlite_registry import RegistryStore


def test_the_registry_is_stored_whole(tmp_path: Path) -> None:
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
    registry = Registry().with_portal(portal).with_connector(connector)
    store = RegistryStore(path)
    store.save_registry(registry)
    store.save_registry(Registry(registry.version + 1, registry.portals, {}))
    store.close()
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
