"""Quick answers: the canned replies of a portal's lines, stored by the engine.

Operators list them and send one by id in a reply (``PortalRouter.reply`` fills its
variables in). They change no dialog, so they are kept apart from the router's steps; an
edit is a read and a write, made one at a time. See docs/routing.md, "Quick answers".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from engine.clock import Clock
from engine.errors import NotFoundError
from engine.ids import new_id
from engine.store.base import OutboxStore
from engine.store.records import QuickAnswer
from engine.store.threaded import ThreadedStore


class QuickAnswers:
    def __init__(
        self,
        portal_id: str,
        store: ThreadedStore[OutboxStore],
        clock: Clock,
        known_line: Callable[[str], None],
    ) -> None:
        self._portal_id = portal_id
        self._store = store
        self._clock = clock
        self._known_line = known_line
        """Raises ``NotFoundError`` for a line the portal does not have."""
        self._lock = asyncio.Lock()

    async def of_line(self, line_id: str) -> list[QuickAnswer]:
        """The line's quick answers, oldest first."""
        self._known_line(line_id)
        return await self._store.call(self._store.store.quick_answers, self._portal_id, line_id)

    async def get(self, answer_id: str) -> QuickAnswer:
        answer = await self._store.call(self._store.store.quick_answer, self._portal_id, answer_id)
        if answer is None:
            raise NotFoundError(f"no quick answer {answer_id!r} in portal {self._portal_id!r}")
        return answer

    async def create(self, line_id: str, title: str, text: str) -> QuickAnswer:
        self._known_line(line_id)
        now = self._clock.now()
        answer = QuickAnswer(new_id("qa"), line_id, title, text, now, now)
        await self._store.call(self._store.store.put_quick_answer, self._portal_id, answer)
        return answer

    async def update(self, answer_id: str, title: str, text: str) -> QuickAnswer:
        async with self._lock:
            old = await self.get(answer_id)
            answer = replace(old, title=title, text=text, updated_at=self._clock.now())
            await self._store.call(self._store.store.put_quick_answer, self._portal_id, answer)
        return answer

    async def delete(self, answer_id: str) -> QuickAnswer:
        """The quick answer removed."""
        async with self._lock:
            answer = await self.get(answer_id)
            await self._store.call(
                self._store.store.delete_quick_answer, self._portal_id, answer_id
            )
        return answer
