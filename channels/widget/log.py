"""The widget's durable log: every visitor's conversation as the widget shows it.

One SQLite file (``<data_dir>/widget/widget.sqlite3``) shared by every process of the engine
on the machine: channel actors append visitors' messages and read it to serve live
connections; portal actors append operators' replies (``WidgetChannel.send``). SQLite
serializes writers across processes (WAL, ``busy_timeout``), so ``seq`` numbers are given
in commit order: once a reader sees ``seq`` n, every entry below n is already visible. A
reader that remembers the highest ``seq`` it has seen therefore misses nothing by asking
for what is above it (docs/channels/widget.md, "The live path back").

Each entry has a de-duplication key: ``v:<visitor>:<client_id>`` for a visitor's message
(the widget's own id, so a resend after a network drop is stored once) and
``r:<reply_id>`` for a reply (the engine's id, so a resend after a restart is stored once).
A duplicate is answered with the ``seq`` it got the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.clock import SystemClock
from engine.store.sqlite_file import SqliteFile
from engine.store.threaded import ThreadedStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS widget_visitors (
    token_hash BLOB PRIMARY KEY, connector_id TEXT NOT NULL, visitor_id TEXT NOT NULL,
    created_at REAL NOT NULL, name TEXT, phone TEXT, email TEXT) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS widget_visitor_id ON widget_visitors (visitor_id);
CREATE TABLE IF NOT EXISTS widget_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, connector_id TEXT NOT NULL,
    visitor_id TEXT NOT NULL, dedup_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL,
    at REAL NOT NULL, kind TEXT NOT NULL DEFAULT 'entry');
CREATE INDEX IF NOT EXISTS widget_entries_visitor ON widget_entries (visitor_id, seq);
CREATE TABLE IF NOT EXISTS widget_files (
    file_id TEXT PRIMARY KEY, connector_id TEXT NOT NULL, visitor_id TEXT NOT NULL,
    name TEXT NOT NULL, mime_type TEXT NOT NULL, data BLOB NOT NULL,
    at REAL NOT NULL) WITHOUT ROWID;
"""

TYPING_SHOWN_S = 10.0
"""A typing signal older than this is left out of a backlog: it no longer says anything."""

HISTORY_MAX = 500
"""Entries a fresh page is given at most (the newest); a resume gets everything it missed,
page by page."""


def token_hash(token: str) -> bytes:
    """What is stored of a visitor's token: a stolen database opens no session."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Visitor:
    """A visitor as a session token proves them, with the details they left."""

    connector_id: str
    visitor_id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append; ``body`` is the JSON the widget is sent (without ``seq``)."""

    connector_id: str
    visitor_id: str
    dedup_key: str
    body: bytes
    kind: str = "entry"
    """``entry`` (a message) or ``typing`` (a signal, never part of the history)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    connector_id: str
    visitor_id: str
    body: bytes
    at: float


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    new: bool


@dataclass(frozen=True, slots=True)
class StoredFile:
    connector_id: str
    visitor_id: str
    name: str
    mime_type: str
    data: bytes


class WidgetLog(SqliteFile):
    """The log's SQL; used from its store thread only (``shared_log``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def append(self, entries: Sequence[NewEntry], now: float) -> list[Appended]:
        """Entries in one durable transaction; a duplicate keeps the ``seq`` it had."""
        results: list[Appended] = []
        with self._transaction(durable=True) as db:
            for entry in entries:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO widget_entries"
                    " (connector_id, visitor_id, dedup_key, body, at, kind) VALUES (?,?,?,?,?,?)",
                    (
                        entry.connector_id,
                        entry.visitor_id,
                        entry.dedup_key,
                        entry.body,
                        now,
                        entry.kind,
                    ),
                )
                if cursor.rowcount:
                    results.append(Appended(int(cursor.lastrowid or 0), True))
                    continue
                row = db.execute(
                    "SELECT seq FROM widget_entries WHERE dedup_key = ?", (entry.dedup_key,)
                ).fetchone()
                results.append(Appended(int(row[0]), False))
        return results

    def add_visitor(self, hashed: bytes, connector_id: str, visitor_id: str, now: float) -> None:
        with self._transaction(durable=True) as db:
            db.execute(
                "INSERT INTO widget_visitors (token_hash, connector_id, visitor_id, created_at)"
                " VALUES (?,?,?,?)",
                (hashed, connector_id, visitor_id, now),
            )

    def visitor(self, hashed: bytes) -> Visitor | None:
        row = self._db.execute(
            "SELECT connector_id, visitor_id, name, phone, email FROM widget_visitors"
            " WHERE token_hash = ?",
            (hashed,),
        ).fetchone()
        return Visitor(*row) if row is not None else None

    def set_details(
        self, visitor_id: str, name: str | None, phone: str | None, email: str | None
    ) -> None:
        """The form's answers; a field left empty keeps what the visitor gave before."""
        with self._transaction(durable=True) as db:
            db.execute(
                "UPDATE widget_visitors SET name = coalesce(?, name),"
                " phone = coalesce(?, phone), email = coalesce(?, email) WHERE visitor_id = ?",
                (name, phone, email, visitor_id),
            )

    def entries_of(self, visitor_id: str, after_seq: int, limit: int, now: float) -> list[LogEntry]:
        """The visitor's entries above ``after_seq``, oldest first; from 0, the newest
        ``limit`` (a fresh page shows the end of a long conversation). Typing signals only
        while they are fresh (``TYPING_SHOWN_S``)."""
        fresh = now - TYPING_SHOWN_S
        if after_seq <= 0:
            rows = self._db.execute(
                "SELECT seq, connector_id, visitor_id, body, at FROM widget_entries"
                " WHERE visitor_id = ? AND (kind = 'entry' OR at >= ?)"
                " ORDER BY seq DESC LIMIT ?",
                (visitor_id, fresh, limit),
            ).fetchall()
            rows.reverse()
        else:
            rows = self._db.execute(
                "SELECT seq, connector_id, visitor_id, body, at FROM widget_entries"
                " WHERE visitor_id = ? AND seq > ? AND (kind = 'entry' OR at >= ?)"
                " ORDER BY seq LIMIT ?",
                (visitor_id, after_seq, fresh, limit),
            ).fetchall()
        return [LogEntry(*row) for row in rows]

    def since(self, after_seq: int, limit: int) -> list[LogEntry]:
        """Every visitor's entries above ``after_seq``, in order: what a live hub tails."""
        rows = self._db.execute(
            "SELECT seq, connector_id, visitor_id, body, at FROM widget_entries"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [LogEntry(*row) for row in rows]

    def head(self) -> int:
        row = self._db.execute("SELECT coalesce(max(seq), 0) FROM widget_entries").fetchone()
        return int(row[0])

    def put_file(self, file_id: str, stored: StoredFile, now: float) -> None:
        with self._transaction(durable=True) as db:
            db.execute(
                "INSERT INTO widget_files VALUES (?,?,?,?,?,?,?)",
                (
                    file_id,
                    stored.connector_id,
                    stored.visitor_id,
                    stored.name,
                    stored.mime_type,
                    stored.data,
                    now,
                ),
            )

    def file(self, file_id: str) -> StoredFile | None:
        row = self._db.execute(
            "SELECT connector_id, visitor_id, name, mime_type, data FROM widget_files"
            " WHERE file_id = ?",
            (file_id,),
        ).fetchone()
        return StoredFile(*row) if row is not None else None


LogThread = ThreadedStore[WidgetLog]


def log_path(data_dir: Path) -> Path:
    return data_dir / "widget" / "widget.sqlite3"


_SHARED: dict[Path, LogThread] = {}


def shared_log(path: Path) -> LogThread:
    """This process's one connection to the log at ``path``, on its own thread (appends
    from the channel's sends and the widget's API commit in groups). Group commit waits on
    real time, never on a test's manual clock (as the intake's)."""
    thread = _SHARED.get(path)
    if thread is None:
        thread = _SHARED[path] = ThreadedStore(WidgetLog(path), SystemClock(), "widget-log")
    return thread


async def close_shared_logs() -> None:
    """Close every log this process opened (a stopping actor, a test's end)."""
    opened = list(_SHARED.values())
    _SHARED.clear()
    for thread in opened:
        await thread.close()
