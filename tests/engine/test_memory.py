"""Freed memory goes back to the system after a large, passing load (engine/memory.py)."""

from __future__ import annotations

import platform

import pytest

from engine.memory import release_freed_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


def test_a_load_that_passed_leaves_its_pages_with_the_system() -> None:
    release_freed_memory(0.0)
    before = resident_mb()
    load = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]  # 200 MB through malloc
    keep = load[::1000]  # a few survivors scattered through the heap keep it from shrinking
    del load
    assert resident_mb() - before > 150, "glibc kept the freed chunks (the case to cure)"
    assert release_freed_memory(0.0)
    assert resident_mb() - before < 30
    assert len(keep) == 100


def test_a_second_trim_right_after_the_first_is_skipped() -> None:
    release_freed_memory(0.0)
    assert not release_freed_memory()
