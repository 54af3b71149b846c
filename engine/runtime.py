"""Owning the local Ray processes of an engine: one engine per data folder, no leftovers.

After a ``kill -9`` of the engine, Ray's raylet and GCS go away with it, but its
``DashboardAgent`` and ``RuntimeEnvAgent`` have been seen to stay behind as orphans. Their
process titles say nothing of where they came from, but their open files point into the Ray
temp folder; each data folder gets its own temp folder, so at start-up (holding the data
folder's lock, so no live engine can own them) every process with files open there is a
leftover of ours and is killed. Repeated restarts therefore never pile them up.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import IO

from engine.errors import ConfigError


def ray_temp_dir(data_dir: Path) -> Path:
    """A short, per-data-folder Ray temp folder (Unix socket paths must stay < 108 bytes)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"olr-{digest}"


def processes_using(directory: Path) -> list[int]:
    """Pids (other than ours) with a file open below ``directory``."""
    prefix = str(directory.resolve()) + os.sep
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if any(target.startswith(prefix) for target in _open_files(entry)):
            found.append(int(entry.name))
    return sorted(found)


def _open_files(process_dir: Path) -> list[str]:
    """Targets of a process's open file descriptors; one closing meanwhile is skipped."""
    try:
        descriptors = list((process_dir / "fd").iterdir())
    except (PermissionError, FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return []
    targets = []
    for descriptor in descriptors:
        try:
            targets.append(os.readlink(descriptor))
        except OSError:
            continue
    return targets


def kill_leftovers(directory: Path, timeout_s: float = 10.0) -> list[int]:
    """SIGKILL every process with files open in ``directory``; wait until they are gone."""
    pids = processes_using(directory)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and processes_using(directory):
        time.sleep(0.05)
    return pids


def remove_ray_temp_dir(directory: Path) -> None:
    """Remove a Ray temp folder whose processes are gone (``kill_leftovers`` first): Ray
    leaves its sessions, sockets and logs there, and a stopped engine leaves nothing."""
    shutil.rmtree(directory, ignore_errors=True)


class DataDirLock:
    """An exclusive ``flock`` on the data folder: released by the kernel even after kill -9."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "engine.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"another engine (pid {owner}) runs on data folder {self.path.parent}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def keep_across_exec(self) -> int:
        """The lock's descriptor, left open through ``exec``: the keeper that replaces the
        driver holds the lock it took (``adopt``)."""
        if self._file is None:
            raise RuntimeError("the data folder's lock is not held")
        descriptor = self._file.fileno()
        os.set_inheritable(descriptor, True)
        return descriptor

    @classmethod
    def adopt(cls, data_dir: Path, descriptor: int) -> DataDirLock:
        """The lock this process took before an ``exec`` (``keep_across_exec``)."""
        lock = cls(data_dir)
        lock._file = os.fdopen(descriptor, "a+", encoding="utf-8")
        return lock

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the engine binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
