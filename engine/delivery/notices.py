"""Telling a portal's router which offers reached the portal, off the delivery loop.

The router starts an offer's accept timeout only once the portal has the offer
(``PortalRouter.offers_settled``), and the scheduler tells it only once the acknowledgement
is written. The router takes its lock for that step; waiting for it in the delivery loop
would hold every portal's delivery behind one portal's routing, so each telling is a task of
its own (held here until done, so it is not garbage-collected).
"""

from __future__ import annotations

import asyncio
import logging

from engine.delivery.mailbox import PortalMailbox
from engine.metrics import Counters

log = logging.getLogger(__name__)


class OfferNotices:
    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._tasks: set[asyncio.Task[None]] = set()

    def tell(self, mailbox: PortalMailbox, offers: list[str]) -> None:
        """These offers reached the portal (or were given up on): tell its router."""
        task = asyncio.get_running_loop().create_task(self._tell(mailbox, offers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, mailbox: PortalMailbox, offers: list[str]) -> None:
        try:
            await mailbox.offers_settled(offers)
        except Exception:  # a boundary: the router reloads its board from the store itself
            log.exception("portal %s: recording offers that reached it failed", mailbox.id)
            self._counters.inc("openlines_rejected_total", reason="routing_error")

    async def close(self) -> None:
        """Wait for the tellings under way (each is one routing step)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
