"""A synchronous store driven from asyncio: one thread per store, group commit on appends.

SQLite connections must not be shared between threads, and a commit blocks for a disk sync;
so every call runs on the store's single worker thread. Appends that arrive while a commit
is running wait and are written together in the next transaction (group commit): under load
one fsync covers many webhooks. There is no wait before a commit: the next group is
whatever arrived while the previous one was being written.

A group shares work, never failure: when its commit fails, its members are written again
one by one, so only the member that cannot be stored fails (STYLE.md, lessons).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from engine.clock import Clock

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound="Appendable")


class Appendable(Protocol):
    def append(self, records: Sequence[Any], now: float) -> list[Any]:
        """One result per record (duplicate or not, or what was kept)."""
        ...

    def close(self) -> None: ...


class StoreThread(Generic[R]):
    """Runs every call on a synchronous store on the store's own single thread."""

    def __init__(self, store: R, name: str = "store") -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(*args))

    async def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            await self.call(close)
        self._thread.shutdown(wait=True)


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
