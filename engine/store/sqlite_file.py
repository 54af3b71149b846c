"""One SQLite file as the engine uses them all: WAL, one thread, durable or not per commit.

Only what a caller is answered on must survive a power cut: such a transaction is
**durable**. Bookkeeping is not: in WAL mode it still survives a killed process, and a power
cut can only make it happen again, never lose what was acknowledged.

The connection runs with ``synchronous=NORMAL`` (every commit survives a killed process),
and a durable commit then syncs the WAL to disk itself (``fdatasync``), which is the one step
FULL adds in WAL mode. SQLite refuses to change ``synchronous`` inside a transaction, so
this is what lets durable and bookkeeping work share one transaction, and no commit pays a
statement to switch modes. A file configured with ``synchronous`` below FULL never syncs on
its own; one that SQLite could not put in WAL mode keeps the configured mode for every
commit (all of them durable, as SQLite syncs each).

**Groups.** The store's thread (``engine.store.threaded``) runs the calls that queued while
it was busy as one group in one transaction, so a thousand quiet portals' routing steps cost
one commit instead of a thousand. The group is durable when any member asked for it (the
others get more durability than they asked). Members run **without savepoints** first: a
savepoint makes SQLite copy every page a member touches to a temporary journal on disk,
several times the bytes of the data itself. When a member fails after changing something,
the thread rolls the group back and runs it again isolated (``isolating``): the group's
first transaction alone, every later one in a savepoint of its own, so a member's failure
rolls back its own writes only.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

SYNCED_MODES = ("FULL", "EXTRA")
"""``synchronous`` modes whose durable commits survive a power cut."""


def open_database(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in WAL mode, used by one thread at a time (the store's own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def in_wal_mode(connection: sqlite3.Connection) -> bool:
    return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"


class SqliteFile:
    def __init__(
        self,
        path: Path,
        schema: str,
        synchronous: str = "FULL",
        added_columns: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.path = path
        self._db = open_database(path, synchronous)
        self._syncs_wal = synchronous.upper() in SYNCED_MODES and in_wal_mode(self._db)
        if self._syncs_wal:
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._wal_fd: int | None = None
        self._db.executescript(schema)
        self._grouping = False
        self.isolating = False
        """Run a group's members each in a savepoint of its own (the thread sets it)."""
        self._group_durable: bool | None = None
        """The open group transaction's durability; None while none is open."""
        self._add_missing_columns(added_columns or {})

    def _add_missing_columns(self, columns: Mapping[tuple[str, str], str]) -> None:
        """Columns added to a table after it was first created (``(table, column)``: its
        type and default): a file written before gets them on open."""
        for (table, column), kind in columns.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _sync(self) -> None:
        """What is committed survives a power cut: the WAL on disk (module docstring)."""
        if not self._syncs_wal:
            return
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        os.fdatasync(self._wal_fd)

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        if self._grouping:
            with self._member(durable) as db:
                yield db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if durable:
            self._sync()

    @contextmanager
    def _member(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """One member's transaction inside the group's (module docstring, "Groups")."""
        if self._group_durable is None:
            self._db.execute("BEGIN IMMEDIATE")
            self._group_durable = durable
            try:
                yield self._db
            except BaseException:
                if self.isolating:  # the first: nothing before it in the group to keep
                    self.abandon_group()
                raise
            return
        self._group_durable = self._group_durable or durable
        if not self.isolating:
            yield self._db
            return
        self._db.execute("SAVEPOINT member")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK TO member")
            self._db.execute("RELEASE member")
            raise
        self._db.execute("RELEASE member")

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Run the calls of one group (the store's thread only); ``commit_group`` ends each
        part of it, and the last part is committed on the way out."""
        self._grouping = True
        try:
            yield
        except BaseException:
            self._grouping = False
            self.abandon_group()
            raise
        finally:
            self.isolating = False
        self._grouping = False
        self.commit_group()

    def changes(self) -> int:
        """Rows changed on this connection so far: whether a failed member wrote anything."""
        return self._db.total_changes

    def abandon_group(self) -> None:
        """Take back the open group transaction, if any."""
        if self._group_durable is not None:
            self._group_durable = None
            self._db.execute("ROLLBACK")

    def commit_group(self) -> None:
        """Commit the open group transaction, if any; on failure nothing of it is kept."""
        if self._group_durable is None:
            return
        durable, self._group_durable = self._group_durable, None
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if durable:
            self._sync()

    def close(self) -> None:
        self._db.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
