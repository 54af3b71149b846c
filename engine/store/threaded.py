"""A synchronous store driven from asyncio: one thread per store, group commit on appends.

SQLite connections must not be shared between threads, and a commit blocks for a disk sync;
so every call runs on the store's single worker thread. Appends that arrive while a commit
is running wait and are written together in the next transaction (group commit): under load
one fsync covers many webhooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from engine.clock import Clock
from engine.store.records import OutboxRecord

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound="Appendable")


class Appendable(Protocol):
    def append(self, records: Sequence[OutboxRecord], now: float) -> list[bool]: ...

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
        self._waiting: list[tuple[Sequence[OutboxRecord], asyncio.Future[list[bool]]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def append(self, records: Sequence[OutboxRecord]) -> list[bool]:
        """Store records durably; returns once they are committed (with others, if any)."""
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
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
            except Exception as exc:  # handed to every caller of the failed group
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for records, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(records)])
                start += len(records)

    async def close(self) -> None:
        while self._committer is not None and not self._committer.done():
            await self._committer
        await super().close()
