"""Callbacks due at times of an injected clock, earliest first, for one loop to run.

The delivery scheduler keeps every portal's waits here (a linger ending, a retry falling
due, a failed step tried again): one heap and one sleeper for the whole host, instead of a
sleeping task per stream. An entry is never removed early; a callback checks that what it
was set for still holds (a stream restarted meanwhile, a mailbox removed).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

Callback = Callable[[], None]


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callback]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, callback: Callback) -> None:
        """Run ``callback`` once the clock reaches ``when`` (ties in the order set)."""
        heapq.heappush(self._heap, (when, next(self._order), callback))

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[Callback]:
        """The callbacks due at ``now``, earliest first, taken off the heap."""
        due: list[Callback] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due
