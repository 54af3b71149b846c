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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.clock import Clock, SystemClock
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
CREATE INDEX IF NOT EXISTS widget_entries_typing ON widget_entries (connector_id, at)
    WHERE kind = 'typing';
CREATE INDEX IF NOT EXISTS widget_visitors_age ON widget_visitors (connector_id, created_at);
CREATE TABLE IF NOT EXISTS widget_files (
    file_id TEXT PRIMARY KEY, connector_id TEXT NOT NULL, visitor_id TEXT NOT NULL,
    name TEXT NOT NULL, mime_type TEXT NOT NULL, data BLOB NOT NULL,
    at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS widget_files_visitor ON widget_files (visitor_id, at);
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
class IdleVisitor:
    """A visitor the retention may remove: ``created_at`` pages through them."""

    visitor_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class IdlePage:
    """Visitors of one page past their retention; ``last``: where the next page starts
    (None: this was the last)."""

    idle: list[str]
    last: IdleVisitor | None


ACTIVITY_SQL = (
    "SELECT v.visitor_id, v.created_at,"
    " (SELECT max(e.at) FROM widget_entries e"
    "  WHERE e.visitor_id = v.visitor_id AND e.kind = 'entry'),"
    " (SELECT max(f.at) FROM widget_files f WHERE f.visitor_id = v.visitor_id)"
    " FROM widget_visitors v"
)
"""Visitors with when they were created, last wrote or were written to, last uploaded."""


def _past_retention(
    rows: Sequence[tuple[str, float, float | None, float | None]],
    history_before: float,
    silent_before: float,
) -> list[str]:
    """The visitors of ``ACTIVITY_SQL`` rows past their retention: a silent one created
    before ``silent_before``; any other with nothing since ``history_before``."""
    past: list[str] = []
    for visitor_id, created_at, last_entry, last_file in rows:
        if last_entry is None and last_file is None:
            if created_at < silent_before:
                past.append(visitor_id)
        elif max(created_at, last_entry or created_at, last_file or created_at) < history_before:
            past.append(visitor_id)
    return past


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What one pruning step removed."""

    visitors: int = 0
    entries: int = 0
    files: int = 0

    def __add__(self, other: Forgotten) -> Forgotten:
        return Forgotten(
            self.visitors + other.visitors, self.entries + other.entries, self.files + other.files
        )


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

    # --- retention (channels/widget/retention.py decides; docs/channels/widget.md)

    def idle_visitors(
        self,
        connector_id: str,
        history_before: float,
        silent_before: float,
        after: IdleVisitor | None,
        limit: int,
    ) -> IdlePage:
        """One page (``limit`` visitors by age, after ``after``) of the connector's
        visitors, and those of them past their retention: nothing of theirs (message,
        reply, upload) since ``history_before``, or nothing at all and created before
        ``silent_before``. Open dialogs are the caller's to spare."""
        start = after or IdleVisitor("", float("-inf"))
        rows = self._db.execute(
            ACTIVITY_SQL + " WHERE v.connector_id = ? AND v.created_at < max(?, ?)"
            " AND (v.created_at, v.visitor_id) > (?, ?)"
            " ORDER BY v.created_at, v.visitor_id LIMIT ?",
            (
                connector_id,
                history_before,
                silent_before,
                start.created_at,
                start.visitor_id,
                limit,
            ),
        ).fetchall()
        idle = _past_retention(rows, history_before, silent_before)
        last = IdleVisitor(rows[-1][0], rows[-1][1]) if len(rows) == limit else None
        return IdlePage(idle, last)

    def forget_visitors(
        self, visitor_ids: Sequence[str], history_before: float, silent_before: float
    ) -> Forgotten:
        """Those of the visitors still past their retention, with their conversations and
        uploads, in one durable transaction. The retention is checked again inside it (the
        writer's lock held): a visitor who wrote since ``idle_visitors`` read them stays.
        A token of a removed visitor opens nothing afterwards (a new session starts)."""
        if not visitor_ids:
            return Forgotten()
        marks = ",".join("?" * len(visitor_ids))
        with self._transaction(durable=True) as db:
            rows = db.execute(
                ACTIVITY_SQL + f" WHERE v.visitor_id IN ({marks})",
                visitor_ids,
            ).fetchall()
            gone = _past_retention(rows, history_before, silent_before)
            if not gone:
                return Forgotten()
            marks = ",".join("?" * len(gone))
            entries = db.execute(
                f"DELETE FROM widget_entries WHERE visitor_id IN ({marks})", gone
            ).rowcount
            files = db.execute(
                f"DELETE FROM widget_files WHERE visitor_id IN ({marks})", gone
            ).rowcount
            visitors = db.execute(
                f"DELETE FROM widget_visitors WHERE visitor_id IN ({marks})", gone
            ).rowcount
        return Forgotten(visitors, entries, files)

    def forget_typing(self, connector_id: str, before: float) -> Forgotten:
        """Typing signals older than ``before``: never part of a history, only of a live
        connection's moment (``TYPING_SHOWN_S``)."""
        with self._transaction(durable=True) as db:
            entries = db.execute(
                "DELETE FROM widget_entries WHERE connector_id = ? AND kind = 'typing' AND at < ?",
                (connector_id, before),
            ).rowcount
        return Forgotten(entries=entries)


LogThread = ThreadedStore[WidgetLog]


def log_path(data_dir: Path) -> Path:
    return data_dir / "widget" / "widget.sqlite3"


class StampClock:
    """The time appends are stamped with: the engine's clock once the process gave it
    (``shared_log(path, clock)``), so retention, which reads the same clock, compares like
    with like, also under a test's manual clock. Group commit itself never waits on it."""

    def __init__(self) -> None:
        self.clock: Clock = SystemClock()

    def now(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


_SHARED: dict[Path, LogThread] = {}
_ON_CLOSE: list[Callable[[], None]] = []
"""What else a process forgets of the widget logs when it closes them (the cluster's homes:
``channels.widget.logs``)."""
_STAMPS: dict[Path, StampClock] = {}


def stamp_with(path: Path, clock: Clock) -> None:
    """Stamp this process's appends to the log at ``path`` with ``clock`` (the engine's;
    a process has one), whether or not it has opened the log yet."""
    _STAMPS.setdefault(path, StampClock()).clock = clock


def shared_log(path: Path, clock: Clock | None = None) -> LogThread:
    """This process's one connection to the log at ``path``, on its own thread (appends
    from the channel's sends and the widget's API commit in groups), stamped with
    ``clock`` when given (``stamp_with``)."""
    if clock is not None:
        stamp_with(path, clock)
    thread = _SHARED.get(path)
    if thread is None:
        stamp = _STAMPS.setdefault(path, StampClock())
        thread = _SHARED[path] = ThreadedStore(WidgetLog(path), stamp, "widget-log")
    return thread


def forget_on_close(forget: Callable[[], None]) -> None:
    """``forget`` is called when the process closes its logs (``close_shared_logs``)."""
    _ON_CLOSE.append(forget)


async def close_shared_logs() -> None:
    """Close every log this process opened (a stopping actor, a test's end)."""
    opened = list(_SHARED.values())
    _SHARED.clear()
    _STAMPS.clear()
    for forget in _ON_CLOSE:
        forget()
    for thread in opened:
        await thread.close()
