"""The registry's durable copy: portals and connectors added at run time survive a restart.

The registry (``engine.registry_service``) is its only user; one small SQLite file beside
the outboxes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import orjson

from engine.config import ConnectorConfig, PortalConfig
from engine.registry import Registry, RegistryChange
from engine.store.sqlite_file import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry (
    kind TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class RegistryStore(SqliteFile):
    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        super().__init__(path, SCHEMA, synchronous)

    def load_registry(self) -> Registry:
        portals: dict[str, PortalConfig] = {}
        connectors: dict[str, ConnectorConfig] = {}
        for kind, _, body in self._db.execute("SELECT kind, id, body FROM registry"):
            data = orjson.loads(body)
            if kind == "portal":
                portal = PortalConfig.model_validate(data)
                portals[portal.id] = portal
            else:
                connector = ConnectorConfig.model_validate(data)
                connectors[connector.id] = connector
        row = self._db.execute("SELECT value FROM meta WHERE key = 'registry_version'").fetchone()
        return Registry(int(row[0]) if row else 0, portals, connectors)

    def save_registry(self, registry: Registry) -> None:
        """Replace the stored registry with ``registry`` in one transaction (the config
        file merged in at start)."""
        with self._transaction(durable=True) as db:
            db.execute("DELETE FROM registry")
            self._put(db, registry.portals.values(), registry.connectors.values())
            self._set_version(db, registry.version)

    def save_change(self, change: RegistryChange) -> None:
        """Store one version's change (an admin call): its rows alone, in one transaction."""
        with self._transaction(durable=True) as db:
            self._put(db, change.portals, change.connectors)
            db.executemany(
                "DELETE FROM registry WHERE kind = 'connector' AND id = ?",
                [(connector_id,) for connector_id in change.removed_connectors],
            )
            self._set_version(db, change.version)

    @staticmethod
    def _put(
        db: sqlite3.Connection,
        portals: Iterable[PortalConfig],
        connectors: Iterable[ConnectorConfig],
    ) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO registry VALUES ('portal', ?, ?)",
            [(portal.id, portal.model_dump_json().encode()) for portal in portals],
        )
        db.executemany(
            "INSERT OR REPLACE INTO registry VALUES ('connector', ?, ?)",
            [(connector.id, connector.model_dump_json().encode()) for connector in connectors],
        )

    @staticmethod
    def _set_version(db: sqlite3.Connection, version: int) -> None:
        db.execute(
            "INSERT INTO meta VALUES ('registry_version', ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value",
            (version,),
        )
