"""The router's durable state: dialogs, round-robin cursors and the registry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from engine.config import ConnectorConfig, PortalConfig
from engine.models import DialogInfo
from engine.registry import Registry
from engine.store.sqlite_outbox import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS dialogs (
    dialog_id TEXT PRIMARY KEY, portal_id TEXT NOT NULL, line_id TEXT NOT NULL,
    connector_id TEXT NOT NULL, channel TEXT NOT NULL, dialog_key TEXT NOT NULL,
    customer_id TEXT NOT NULL, operator_id TEXT, status TEXT NOT NULL, opened_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS dialogs_open
    ON dialogs (portal_id, connector_id, dialog_key) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS cursors (
    portal_id TEXT NOT NULL, line_id TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (portal_id, line_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registry (
    kind TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_DIALOG_FIELDS = (
    "dialog_id",
    "portal_id",
    "line_id",
    "connector_id",
    "channel",
    "dialog_key",
    "customer_id",
    "operator_id",
    "opened_at",
    "status",
)
_DIALOG_COLUMNS = ", ".join(_DIALOG_FIELDS)


def _dialog(row: tuple[object, ...]) -> DialogInfo:
    return DialogInfo.model_validate(dict(zip(_DIALOG_FIELDS, row, strict=True)))


class DialogStore:
    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self._db: sqlite3.Connection = open_database(path, synchronous)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def open_dialog(self, portal_id: str, connector_id: str, dialog_key: str) -> DialogInfo | None:
        row = self._db.execute(
            f"SELECT {_DIALOG_COLUMNS} FROM dialogs WHERE portal_id = ? AND connector_id = ?"
            " AND dialog_key = ? AND status = 'open'",
            (portal_id, connector_id, dialog_key),
        ).fetchone()
        return None if row is None else _dialog(row)

    def dialog(self, dialog_id: str) -> DialogInfo | None:
        row = self._db.execute(
            f"SELECT {_DIALOG_COLUMNS} FROM dialogs WHERE dialog_id = ?", (dialog_id,)
        ).fetchone()
        return None if row is None else _dialog(row)

    def insert_dialog(self, dialog: DialogInfo) -> None:
        self._db.execute(
            f"INSERT INTO dialogs ({_DIALOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(getattr(dialog, name) for name in _DIALOG_FIELDS),
        )

    def cursor(self, portal_id: str, line_id: str) -> int:
        row = self._db.execute(
            "SELECT position FROM cursors WHERE portal_id = ? AND line_id = ?",
            (portal_id, line_id),
        ).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, portal_id: str, line_id: str, position: int) -> None:
        self._db.execute(
            "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT (portal_id, line_id)"
            " DO UPDATE SET position = excluded.position",
            (portal_id, line_id, position),
        )

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
        """Replace the stored registry with ``registry`` in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM registry")
            for portal in registry.portals.values():
                db.execute(
                    "INSERT INTO registry VALUES ('portal', ?, ?)",
                    (portal.id, portal.model_dump_json().encode()),
                )
            for connector in registry.connectors.values():
                db.execute(
                    "INSERT INTO registry VALUES ('connector', ?, ?)",
                    (connector.id, connector.model_dump_json().encode()),
                )
            db.execute(
                "INSERT INTO meta VALUES ('registry_version', ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value",
                (registry.version,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
