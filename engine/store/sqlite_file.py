"""One SQLite file as the engine uses them all: WAL, one thread, durable or not per commit.

Only what a caller is answered on must survive a power cut: such a transaction commits with
the file's ``synchronous`` mode (FULL by default). Bookkeeping commits with NORMAL: in WAL
mode it still survives a killed process, and a power cut can only make it happen again,
never lose what was acknowledged. The next durable commit syncs the WAL, NORMAL frames
included.
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
        self._add_missing_columns(added_columns or {})

    def _add_missing_columns(self, columns: Mapping[tuple[str, str], str]) -> None:
        """Columns added to a table after it was first created (``(table, column)``: its
        type and default): a file written before gets them on open."""
        for (table, column), kind in columns.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        mode = self._durable_mode if durable else "NORMAL"
        if mode != self._mode:
            self._db.execute(f"PRAGMA synchronous={mode}")
            self._mode = mode
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
