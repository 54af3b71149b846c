"""One SQLite file as the engine uses them all: WAL, one thread, durable or not per commit.

Only what a caller is answered on must survive a power cut: such a transaction commits with
the file's ``synchronous`` mode (FULL by default). Bookkeeping commits with NORMAL: in WAL
mode it still survives a killed process, and a power cut can only make it happen again,
never lose what was acknowledged. The next durable commit syncs the WAL, NORMAL frames
included.

**Groups.** The store's thread (``engine.store.threaded``) runs the calls that queued while
it was busy as one group: their transactions become savepoints of one transaction, so a
thousand quiet portals' routing steps cost one commit instead of a thousand. A member's
failure rolls back its own savepoint only. A group's durability is that of its first
transaction; a durable transaction met in a NORMAL group raises ``GroupNotDurable``: the
thread takes back what that call did so far (a savepoint around each call), commits the
group, and runs the call again, whole, in a new durable group (which then takes NORMAL
members too: more durable than they asked).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def open_database(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in WAL mode, used by one thread at a time (the store's own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class GroupNotDurable(BaseException):
    """A durable transaction met inside a NORMAL group (see the module docstring).

    A ``BaseException``: a store method's own ``except Exception`` must not swallow it.
    """


class SqliteFile:
    def __init__(
        self,
        path: Path,
        schema: str,
        synchronous: str = "FULL",
        added_columns: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.path = path
        self._durable_mode = synchronous
        self._mode = synchronous
        self._db = open_database(path, synchronous)
        self._db.executescript(schema)
        self._grouping = False
        self._group_durable: bool | None = None
        """The open group transaction's durability; None while none is open."""
        self._call_savepoint = False
        self._add_missing_columns(added_columns or {})

    def _add_missing_columns(self, columns: Mapping[tuple[str, str], str]) -> None:
        """Columns added to a table after it was first created (``(table, column)``: its
        type and default): a file written before gets them on open."""
        for (table, column), kind in columns.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _set_mode(self, durable: bool) -> None:
        mode = self._durable_mode if durable else "NORMAL"
        if mode != self._mode:
            self._db.execute(f"PRAGMA synchronous={mode}")
            self._mode = mode

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        if self._grouping:
            with self._member(durable) as db:
                yield db
            return
        self._set_mode(durable)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _member(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """One member's transaction inside the group: a savepoint of the group's."""
        if self._group_durable is None:
            self._set_mode(durable)
            self._db.execute("BEGIN IMMEDIATE")
            self._group_durable = durable
        elif durable and not self._group_durable:
            raise GroupNotDurable
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
            if self._group_durable is not None:
                self._group_durable = None
                self._db.execute("ROLLBACK")
            raise
        self._grouping = False
        self.commit_group()

    def call_started(self) -> None:
        """A call of the group begins: what it does can be taken back alone
        (``call_abandoned``), even across several transactions of its own."""
        self._call_savepoint = self._group_durable is not None
        if self._call_savepoint:
            self._db.execute("SAVEPOINT call")

    def call_finished(self) -> None:
        if self._call_savepoint:
            self._call_savepoint = False
            self._db.execute("RELEASE call")

    def call_abandoned(self) -> None:
        """Undo what the call did before it met a durable transaction in a NORMAL group:
        it runs again, whole, at the head of a durable group (``begin_durable_group``)."""
        if self._call_savepoint:
            self._call_savepoint = False
            self._db.execute("ROLLBACK TO call")
            self._db.execute("RELEASE call")
        elif self._group_durable is not None:  # the group began with this call: all its own
            self._group_durable = None
            self._db.execute("ROLLBACK")

    def begin_durable_group(self) -> None:
        """Open a durable group now (after ``commit_group``), whatever its first call does."""
        self._set_mode(True)
        self._db.execute("BEGIN IMMEDIATE")
        self._group_durable = True

    def commit_group(self) -> None:
        """Commit the open group transaction, if any; on failure nothing of it is kept."""
        if self._group_durable is None:
            return
        self._group_durable = None
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
