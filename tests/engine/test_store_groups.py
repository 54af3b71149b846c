"""Store calls run in groups on the store's thread: one transaction, durable when a member
asks, a failure stays its member's (engine/store/threaded.py, engine/store/sqlite_file.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from engine.store.sqlite_file import SqliteFile
from engine.store.threaded import StoreThread

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS refs (
    note INTEGER REFERENCES notes(id) DEFERRABLE INITIALLY DEFERRED
);
"""


class Notes(SqliteFile):
    """A small store that records every statement its connection runs."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        super().__init__(path, SCHEMA, synchronous)
        self._db.execute("PRAGMA foreign_keys=ON")
        self.statements: list[str] = []
        self._db.set_trace_callback(self.statements.append)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def _sync(self) -> None:
        """Records each real sync of the WAL among the statements."""
        with mock.patch.object(os, "fdatasync", wraps=os.fdatasync) as fdatasync:
            super()._sync()
        if fdatasync.called:
            self.statements.append("<WAL synced>")

    def write(self, text: str, durable: bool = False) -> int:
        with self._transaction(durable) as db:
            return int(db.execute("INSERT INTO notes (text) VALUES (?)", (text,)).lastrowid or 0)

    def bookkeeping_then_acknowledged(self, first: str, second: str) -> None:
        """Two transactions in one call, the second durable (met in a NORMAL group)."""
        self.write(first)
        self.write(second, durable=True)

    def write_then_fail(self, text: str) -> None:
        """Fails in its transaction after writing: its write is taken back."""
        with self._transaction(False) as db:
            db.execute("INSERT INTO notes (text) VALUES (?)", (text,))
            raise ValueError(f"{text} failed after writing")

    def dangling_ref(self) -> None:
        """Accepted by its own savepoint; the deferred foreign key fails the commit."""
        with self._transaction(False) as db:
            db.execute("INSERT INTO refs (note) VALUES (999)")

    def wait_for_gate(self) -> None:
        self.entered.set()
        self.gate.wait(10)

    def texts(self) -> list[str]:
        reader = sqlite3.connect(self.path)
        try:
            return [row[0] for row in reader.execute("SELECT text FROM notes ORDER BY id")]
        finally:
            reader.close()

    def commits(self) -> int:
        return sum(1 for statement in self.statements if statement == "COMMIT")

    def transactions(self) -> list[str]:
        """What began, ended and synced transactions, and the savepoints."""
        words = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "<WAL")
        return [s for s in self.statements if s.split()[0] in words]


@pytest.fixture
async def notes(tmp_path: Path) -> AsyncIterator[StoreThread[Notes]]:
    thread = StoreThread(Notes(tmp_path / "notes.sqlite3"), "notes")
    yield thread
    thread.store.gate.set()
    await thread.close()


async def busy_thread(notes: StoreThread[Notes]) -> asyncio.Task[None]:
    """A call that holds the store's thread until ``run_queued``: calls made meanwhile
    queue behind it."""
    busy = asyncio.create_task(notes.call(notes.store.wait_for_gate))
    await asyncio.to_thread(notes.store.entered.wait, 10)
    return busy


async def run_queued(notes: StoreThread[Notes], busy: asyncio.Task[None]) -> None:
    """Once every task made its call, free the thread: the queued calls run as one group."""
    await asyncio.sleep(0)  # the tasks just created run to their first await: all queued
    notes.store.gate.set()
    await busy


async def one_group(notes: StoreThread[Notes], *calls: tuple[Any, ...]) -> list[Any]:
    """Each ``(function, *args)`` called while the thread is busy, so they run as one group;
    their outcomes in order, an exception for a call that raised."""
    busy = await busy_thread(notes)
    tasks = [asyncio.create_task(notes.call(function, *args)) for function, *args in calls]
    await run_queued(notes, busy)
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_calls_queued_while_the_thread_is_busy_commit_once(
    notes: StoreThread[Notes],
) -> None:
    busy = await busy_thread(notes)
    writes = [asyncio.create_task(notes.call(notes.store.write, f"n{i}")) for i in range(50)]
    await run_queued(notes, busy)
    ids = await asyncio.gather(*writes)
    assert sorted(ids) == list(range(1, 51))
    assert notes.store.commits() == 1
    assert notes.store.texts() == [f"n{i}" for i in range(50)]


async def test_a_failing_member_rolls_back_only_its_own_writes(
    notes: StoreThread[Notes],
) -> None:
    busy = await busy_thread(notes)
    first = asyncio.create_task(notes.call(notes.store.write, "kept"))
    twice = asyncio.create_task(notes.call(notes.store.write, "kept"))  # UNIQUE: refused
    last = asyncio.create_task(notes.call(notes.store.write, "also kept"))
    await run_queued(notes, busy)
    assert await first == 1
    with pytest.raises(sqlite3.IntegrityError):
        await twice
    assert await last > 1
    assert notes.store.texts() == ["kept", "also kept"]
    assert notes.store.commits() == 1


async def test_a_failing_member_that_wrote_nothing_leaves_the_group_unisolated(
    notes: StoreThread[Notes],
) -> None:
    """The refused insert changed no row: the group goes on without a savepoint."""
    write = notes.store.write
    outcomes = await one_group(notes, (write, "kept"), (write, "kept"), (write, "also kept"))
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert notes.store.transactions() == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_a_member_failing_after_writing_has_the_group_run_again_isolated(
    notes: StoreThread[Notes],
) -> None:
    first, culprit, last = await one_group(
        notes,
        (notes.store.write, "first"),
        (notes.store.write_then_fail, "culprit"),
        (notes.store.write, "last"),
    )
    assert isinstance(culprit, ValueError)
    assert (first, last) == (1, 2)
    assert notes.store.texts() == ["first", "last"]
    assert notes.store.transactions() == [
        "BEGIN IMMEDIATE",  # without savepoints, until the culprit fails after writing
        "ROLLBACK",
        "BEGIN IMMEDIATE",  # again, isolated: the first member alone, then a savepoint each
        "SAVEPOINT member",
        "ROLLBACK TO member",
        "RELEASE member",
        "SAVEPOINT member",
        "RELEASE member",
        "COMMIT",
    ]
    assert await notes.call(notes.store.write, "the next group is unisolated again") == 3
    assert notes.store.transactions()[-2:] == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_a_durable_member_makes_its_group_durable_synced_once_after_the_commit(
    notes: StoreThread[Notes],
) -> None:
    write = notes.store.write
    outcomes = await one_group(
        notes, (write, "bookkeeping"), (write, "acknowledged", True), (write, "more bookkeeping")
    )
    assert outcomes == [1, 2, 3]
    assert notes.store.texts() == ["bookkeeping", "acknowledged", "more bookkeeping"]
    assert notes.store.transactions() == ["BEGIN IMMEDIATE", "COMMIT", "<WAL synced>"]
    await notes.call(notes.store.write, "bookkeeping alone")
    assert notes.store.transactions()[-2:] == ["BEGIN IMMEDIATE", "COMMIT"]  # not synced


async def test_durable_commits_sync_only_when_the_file_is_configured_full(
    tmp_path: Path,
) -> None:
    """Below FULL, a durable commit is an ordinary one; alone (not grouped) it syncs too."""
    for synchronous, synced in (("FULL", True), ("NORMAL", False), ("OFF", False)):
        store = Notes(tmp_path / f"{synchronous}.sqlite3", synchronous)
        store.write("acknowledged", durable=True)
        assert ("<WAL synced>" in store.statements) is synced, synchronous
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] in (0, 1)  # OFF, NORMAL
        store.close()


async def test_a_group_whose_commit_fails_fails_each_of_its_members_and_keeps_nothing(
    notes: StoreThread[Notes],
) -> None:
    busy = await busy_thread(notes)
    write = asyncio.create_task(notes.call(notes.store.write, "lost with the group"))
    dangling = asyncio.create_task(notes.call(notes.store.dangling_ref))
    await run_queued(notes, busy)
    for call in (write, dangling):
        with pytest.raises(sqlite3.IntegrityError):
            await call
    assert notes.store.texts() == []
    assert await notes.call(notes.store.write, "the next group works") == 1


@pytest.mark.parametrize("behind_another", [True, False])
async def test_a_call_that_turns_durable_half_way_runs_once_in_a_durable_group(
    notes: StoreThread[Notes], behind_another: bool
) -> None:
    """Done twice, the UNIQUE text would refuse the second time."""
    before = [(notes.store.write, "before")] if behind_another else []
    outcomes = await one_group(
        notes,
        *before,
        (notes.store.bookkeeping_then_acknowledged, "a", "b"),
        (notes.store.write, "after"),
    )
    assert not [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    expected = ["a", "b", "after"]
    assert notes.store.texts() == (["before", *expected] if behind_another else expected)
    assert notes.store.transactions() == ["BEGIN IMMEDIATE", "COMMIT", "<WAL synced>"]


async def test_a_close_in_a_group_commits_what_came_before_and_refuses_what_came_after(
    notes: StoreThread[Notes],
) -> None:
    before, closing, after = await one_group(
        notes,
        (notes.store.write, "before"),
        (notes.store.close,),
        (notes.store.write, "after"),
    )
    assert (before, closing) == (1, None)
    assert isinstance(after, sqlite3.ProgrammingError)
    assert notes.store.texts() == ["before"]
