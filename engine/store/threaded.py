"""A synchronous store driven from asyncio: one thread per store, calls run in groups.

SQLite connections must not be shared between threads, and a commit blocks for a disk sync;
so every call runs on the store's single worker thread. Calls that arrive while the thread
is busy wait and run together, at once, as one **group**: one hop to the thread and back
for all of them, and, for a ``SqliteFile``, one transaction for all its members
(``engine.store.sqlite_file``, "Groups"): with thousands of quiet portals each routing one
message, the portal actor commits once per group instead of once per portal. There is no
wait before a group: the next one is whatever arrived while the previous one ran. A
member's answer is given only once its group is committed.

Appends are grouped a second time: those that arrive while one is being written are
written in the next append together (group commit), so under load one fsync covers many
webhooks.

A group shares work, never failure: a member that raises after writing has the group run
again with a savepoint for each member, so it rolls back only its own writes; when an
append's commit fails, its members are written again one by one, so only the member that
cannot be stored fails (STYLE.md, lessons). A group whose commit fails (a disk error) fails
each of its members, as their own commits would have.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from engine.clock import Clock
from engine.store.sqlite_file import SqliteFile

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound="Appendable")


class Appendable(Protocol):
    def append(self, records: Sequence[Any], now: float) -> list[Any]:
        """One result per record (duplicate or not, or what was kept)."""
        ...

    def close(self) -> None: ...


GROUP_MAX = 512
"""Calls run in one group at most: the members' answers wait for the whole group."""


@dataclass(slots=True)
class _Call:
    function: Callable[..., Any]
    args: tuple[object, ...]
    future: asyncio.Future[Any]
    ok: bool = False
    outcome: Any = None


class StoreThread(Generic[R]):
    """Runs every call on a synchronous store on the store's own single thread, in groups
    (see the module docstring)."""

    def __init__(self, store: R, name: str = "store") -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: deque[_Call] = deque()
        self._lock = threading.Lock()
        self._running = False

    async def call(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on the store's thread; its answer once it is committed."""
        call = _Call(function, args, asyncio.get_running_loop().create_future())
        with self._lock:
            self._queue.append(call)
            start, self._running = not self._running, True
        if start:
            self._thread.submit(self._drain)
        result: T = await call.future
        return result

    def _drain(self) -> None:
        """The store's thread: run groups while calls wait."""
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                group = [self._queue.popleft() for _ in range(min(len(self._queue), GROUP_MAX))]
            try:
                self._run_group(group)
            except BaseException as exc:  # the thread's boundary: no caller is left waiting
                for call in group:  # committed or not, none can be told apart any more
                    call.outcome, call.ok = exc, False
            for loop in {call.future.get_loop() for call in group}:
                loop.call_soon_threadsafe(_answer, group, loop)

    def _run_group(self, group: list[_Call]) -> None:
        store = self.store
        if not isinstance(store, SqliteFile):
            for call in group:
                _run(call)
            return
        closing = next((n for n, call in enumerate(group) if call.function == store.close), None)
        if closing is not None:  # what came before it is committed first
            self._run_group(group[:closing])
            for call in group[closing:]:  # the close, then calls on a closed store: refused
                _run(call)
            return
        with store.grouped():
            if not _run_unisolated(store, group):
                store.abandon_group()
                store.isolating = True
                for call in group:
                    _run(call)
            _commit(store, group)

    async def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            await self.call(close)
        self._thread.shutdown(wait=True)


def _run(call: _Call) -> None:
    """Run one member; its exception is its outcome."""
    try:
        call.outcome, call.ok = call.function(*call.args), True
    except BaseException as exc:  # handed to its caller alone
        call.outcome, call.ok = exc, False


def _run_unisolated(store: SqliteFile, group: list[_Call]) -> bool:
    """Every member without a savepoint (``engine.store.sqlite_file``, "Groups"); False as
    soon as one fails after changing something, which only running the group again isolated
    can take back. A member that fails before changing anything leaves the others' work
    as it is."""
    for call in group:
        before = store.changes()
        _run(call)
        if not call.ok and store.changes() != before:
            return False
    return True


def _commit(store: SqliteFile, group: list[_Call]) -> None:
    """Commit the group; if that fails, each member fails with it."""
    try:
        store.commit_group()
    except Exception as exc:
        for call in group:
            if call.ok:
                call.outcome, call.ok = exc, False


def _answer(group: list[_Call], loop: asyncio.AbstractEventLoop) -> None:
    """On ``loop``: the answers of its members (a caller gone meanwhile is skipped)."""
    for call in group:
        if call.future.get_loop() is not loop or call.future.done():
            continue
        if call.ok:
            call.future.set_result(call.outcome)
        else:
            call.future.set_exception(call.outcome)


class ThreadedStore(StoreThread[S]):
    """A store thread that writes appends in groups (see the module docstring)."""

    def __init__(self, store: S, clock: Clock, name: str = "store") -> None:
        super().__init__(store, name)
        self._clock = clock
        self._waiting: list[tuple[Sequence[Any], asyncio.Future[list[Any]]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def append(self, records: Sequence[Any]) -> list[Any]:
        """Store records durably; returns once they are committed (with others, if any)."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups())
        return await future

    async def _commit_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            flat = [record for records, _ in group for record in records]
            try:
                results = await self.call(self.store.append, flat, self._clock.now())
            except Exception as exc:  # handed to its caller alone, or each member tried alone
                if len(group) == 1:
                    _, future = group[0]
                    if not future.done():
                        future.set_exception(exc)
                    continue
                for records, future in group:
                    await self._commit_alone(records, future)
                continue
            start = 0
            for records, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(records)])
                start += len(records)

    async def _commit_alone(
        self, records: Sequence[Any], future: asyncio.Future[list[Any]]
    ) -> None:
        """One caller's records in their own transaction; its failure is its own."""
        try:
            result = await self.call(self.store.append, records, self._clock.now())
        except Exception as exc:  # handed to this caller only: nothing of it was stored
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def close(self) -> None:
        while self._committer is not None and not self._committer.done():
            await self._committer
        await super().close()
