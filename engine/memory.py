"""Giving memory back to the system after a large, passing load.

Reading a config of 10,000 portals, or taking a new version of the registry, allocates far
more than what is kept afterwards (pydantic validates through temporary objects; a pickled
registry is a second copy while it is read). Python hands most of it back to the C
allocator, which keeps the freed pages for the process: a driver that read and then dropped
10,000 portals stayed 22 MB larger; after ``malloc_trim`` 13 MB (measured, README "Many
portals"). Idle memory per portal is a target of its own, so every process trims after such
a load. A trim walks the heap, so it runs at most once per ``MIN_INTERVAL_S``; a platform
adding portals one by one through the admin API gets the next trim a few seconds later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

MIN_INTERVAL_S = 5.0


def _load_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS), where this is a no-op."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _load_trim()
_last_trim = -MIN_INTERVAL_S


def release_freed_memory(min_interval_s: float = MIN_INTERVAL_S) -> bool:
    """Hand the allocator's free pages back to the system; False if skipped (too soon after
    the last time, or no glibc)."""
    global _last_trim
    now = time.monotonic()
    if _TRIM is None or now - _last_trim < min_interval_s:
        return False
    _last_trim = now
    _TRIM(0)
    return True
