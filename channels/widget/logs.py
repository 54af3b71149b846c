"""Which widget log holds a visitor: their **home** (docs/channels/widget.md, "Across
machines").

Each node of a cluster has its own widget log (a file on its disk). A visitor's session is
created in the log of the node that took it, and that log keeps everything of theirs; the
home's name travels in their token, their visitor id and their uploads' ids
(``<name>@<home>``). On one machine the home is ``""``: the ids are those of one machine.

``WidgetLogs.of(home)`` is the visitor's log: this node's own (``LocalLog``, the file
itself, as on one machine) or another node's (``RemoteLogs``: in the running engine a call
to that node's widget log actor, ``actors/widget_log.py``). Both answer the same
``LogPort`` calls, and commit before they answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from channels.widget.log import (
    Appended,
    LogEntry,
    LogThread,
    NewEntry,
    StoredFile,
    Visitor,
    forget_on_close,
    log_path,
    shared_log,
)
from engine.clock import Clock
from engine.errors import NotFoundError

HOME_PATTERN = r"[a-z0-9]{1,16}"
"""A home's name: a node's short name (``actors/widget_log.py``)."""

_HOME = re.compile(HOME_PATTERN)


def home_of(name: str) -> str:
    """The home in a token, visitor id or file id (``""``: this machine's, one machine)."""
    _, sep, home = name.rpartition("@")
    return home if sep and _HOME.fullmatch(home) else ""


def homed(name: str, home: str) -> str:
    """``name`` carrying ``home`` (unchanged on one machine)."""
    return f"{name}@{home}" if home else name


class LogPort(Protocol):
    """One node's widget log, as every process calls it; ``now`` is the engine's clock."""

    async def append(self, entries: Sequence[NewEntry]) -> list[Appended]: ...

    async def visitor(self, hashed: bytes) -> Visitor | None: ...

    async def add_visitor(
        self, hashed: bytes, connector_id: str, visitor_id: str, now: float
    ) -> None: ...

    async def set_details(
        self, visitor_id: str, name: str | None, phone: str | None, email: str | None
    ) -> None: ...

    async def entries_of(
        self, visitor_id: str, after_seq: int, limit: int, now: float
    ) -> list[LogEntry]: ...

    async def since(self, after_seq: int, limit: int) -> list[LogEntry]: ...

    async def head(self) -> int: ...

    async def put_file(self, file_id: str, stored: StoredFile, now: float) -> None: ...

    async def file(self, file_id: str) -> StoredFile | None: ...


class LocalLog:
    """This node's log: the file, through this process's one connection (``shared_log``)."""

    def __init__(self, thread: LogThread) -> None:
        self.thread = thread

    async def append(self, entries: Sequence[NewEntry]) -> list[Appended]:
        appended: list[Appended] = await self.thread.append(entries)
        return appended

    async def visitor(self, hashed: bytes) -> Visitor | None:
        return await self.thread.call(self.thread.store.visitor, hashed)

    async def add_visitor(
        self, hashed: bytes, connector_id: str, visitor_id: str, now: float
    ) -> None:
        await self.thread.call(self.thread.store.add_visitor, hashed, connector_id, visitor_id, now)

    async def set_details(
        self, visitor_id: str, name: str | None, phone: str | None, email: str | None
    ) -> None:
        await self.thread.call(self.thread.store.set_details, visitor_id, name, phone, email)

    async def entries_of(
        self, visitor_id: str, after_seq: int, limit: int, now: float
    ) -> list[LogEntry]:
        store = self.thread.store
        return await self.thread.call(store.entries_of, visitor_id, after_seq, limit, now)

    async def since(self, after_seq: int, limit: int) -> list[LogEntry]:
        return await self.thread.call(self.thread.store.since, after_seq, limit)

    async def head(self) -> int:
        return await self.thread.call(self.thread.store.head)

    async def put_file(self, file_id: str, stored: StoredFile, now: float) -> None:
        await self.thread.call(self.thread.store.put_file, file_id, stored, now)

    async def file(self, file_id: str) -> StoredFile | None:
        return await self.thread.call(self.thread.store.file, file_id)


RemoteLogs = Callable[[str], LogPort]
"""Another node's log by its home's name (``NotFoundError`` for a home nobody serves)."""


@dataclass(frozen=True)
class WidgetLogs:
    """This node's home and log, and the way to the others'."""

    home: str
    local: LocalLog
    remote: RemoteLogs | None = None

    def of(self, home: str) -> LogPort:
        if home == self.home:
            return self.local
        if self.remote is None:
            raise NotFoundError(f"no widget log {home!r} in this engine")
        return self.remote(home)

    def of_visitor(self, visitor_id: str) -> LogPort:
        return self.of(home_of(visitor_id))


_CLUSTER: dict[str, tuple[str, RemoteLogs]] = {}
"""Set by an actor of a cluster at its start (``join_cluster``): this process's home and the
way to the others'; absent on one machine."""


forget_on_close(_CLUSTER.clear)


def join_cluster(data_dir: Path, home: str, remote: RemoteLogs) -> None:
    """This process runs on the node whose home is ``home``; other homes via ``remote``."""
    _CLUSTER[str(data_dir)] = (home, remote)


def process_logs(data_dir: Path, clock: Clock | None = None) -> WidgetLogs:
    """The widget logs as this process sees them: its node's, and the cluster's if any."""
    local = LocalLog(shared_log(log_path(data_dir), clock))
    home, remote = _CLUSTER.get(str(data_dir), ("", None))
    return WidgetLogs(home, local, remote)
