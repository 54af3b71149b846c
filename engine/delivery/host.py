"""The logic of one portal actor: a store, and a mailbox and reply sender per hosted portal.

The Ray actor (``actors.portal``) is a thin shell around this class; tests drive it
directly with a manual clock, a real SQLite file and real HTTP stand-ins.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from engine.clock import Clock
from engine.config import PortalConfig
from engine.delivery.mailbox import BatchSealer, DialogResolver, PortalMailbox
from engine.delivery.replies import ChannelLookup, ReplySender
from engine.delivery.transport import DeliveryTransport
from engine.errors import AuthError, NotFoundError
from engine.metrics import Counters
from engine.models import DialogInfo, ReplyRequest
from engine.store.base import OutboxStore
from engine.store.records import DeadLetter, OutboxRecord, dialog_hash
from engine.store.sqlite_outbox import SqliteOutbox
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 600.0
"""API request ids are remembered this long: longer than the 300 s timestamp tolerance."""

SEEN_RETENTION_S = 3 * 86_400.0
"""Channel event ids are remembered this long (Telegram keeps updates for 24 h)."""


class MailboxHost:
    def __init__(
        self,
        store_path: Path,
        clock: Clock,
        transport: DeliveryTransport,
        resolver: DialogResolver,
        sealer: BatchSealer,
        channel_for: ChannelLookup,
        session: aiohttp.ClientSession,
        counters: Counters | None = None,
        rng: random.Random | None = None,
        synchronous: str = "FULL",
    ) -> None:
        self.counters = counters or Counters()
        self._clock = clock
        self._store: ThreadedStore[OutboxStore] = ThreadedStore(
            SqliteOutbox(store_path, synchronous), clock, "outbox"
        )
        self._transport = transport
        self._resolver = resolver
        self._sealer = sealer
        self._channel_for = channel_for
        self._session = session
        self._rng = rng or random.Random()
        self._mailboxes: dict[str, PortalMailbox] = {}
        self._senders: dict[str, ReplySender] = {}

    @property
    def portal_ids(self) -> list[str]:
        return sorted(self._mailboxes)

    async def configure(self, portals: Sequence[PortalConfig]) -> None:
        """Start, update or stop mailboxes so that exactly ``portals`` are served."""
        wanted = {portal.id: portal for portal in portals}
        for portal_id in set(self._mailboxes) - set(wanted):
            await self._stop_portal(portal_id)
        for portal in wanted.values():
            mailbox = self._mailboxes.get(portal.id)
            if mailbox is None:
                await self._start_portal(portal)
            elif mailbox.portal != portal:
                await mailbox.reconfigure(portal)

    async def _start_portal(self, portal: PortalConfig) -> None:
        mailbox = PortalMailbox(
            portal,
            self._store,
            self._transport,
            self._resolver,
            self._sealer,
            self._clock,
            self.counters,
            self._rng,
        )
        sender = ReplySender(
            mailbox,
            self._store,
            self._channel_for,
            self._session,
            self._clock,
            self.counters,
            self._rng,
        )
        self._mailboxes[portal.id] = mailbox
        self._senders[portal.id] = sender
        await mailbox.start()
        await sender.start()

    async def _stop_portal(self, portal_id: str) -> None:
        await self._senders.pop(portal_id).stop()
        await self._mailboxes.pop(portal_id).stop()

    async def append(self, records: Sequence[OutboxRecord]) -> list[bool]:
        """Store records durably (group commit); per record, False for a duplicate."""
        accepted = await self._store.append(records)
        hashes: dict[str, list[int]] = {}
        for record, is_new in zip(records, accepted, strict=True):
            if is_new:
                hashes.setdefault(record.portal_id, []).append(dialog_hash(record.dialog_ref))
        for portal_id, portal_hashes in hashes.items():
            mailbox = self._mailboxes.get(portal_id)
            if mailbox is not None:
                mailbox.notify(portal_hashes)
        return accepted

    async def check_request(self, portal_id: str, request_id: str) -> None:
        """Refuse an API request id this portal already used (a replay)."""
        fresh = await self._store.call(
            self._store.store.remember_request,
            portal_id,
            request_id,
            self._clock.now(),
            REPLAY_WINDOW_S,
        )
        if not fresh:
            raise AuthError(f"request id {request_id!r} was already used (replay)")

    async def submit_reply(
        self, portal_id: str, request_id: str, dialog: DialogInfo, request: ReplyRequest
    ) -> str:
        sender = self._senders.get(portal_id)
        if sender is None:
            raise NotFoundError(f"portal {portal_id!r} is not served here yet")
        await self.check_request(portal_id, request_id)
        return await sender.submit(dialog, request)

    async def dead_letters(
        self, portal_id: str, request_id: str, limit: int, after_event_id: str | None
    ) -> list[DeadLetter]:
        await self.check_request(portal_id, request_id)
        return await self._store.call(
            self._store.store.dead_letters, portal_id, limit, after_event_id
        )

    async def gauges(self) -> dict[str, tuple[int, int]]:
        """Per portal: (outbox depth, dead letters)."""
        store = self._store.store

        def read() -> dict[str, tuple[int, int]]:
            return {
                portal_id: (store.depth(portal_id), store.dead_letter_count(portal_id))
                for portal_id in sorted(set(self._mailboxes) | store.portal_ids())
            }

        return await self._store.call(read)

    async def prune(self) -> int:
        cutoff = self._clock.now() - SEEN_RETENTION_S
        return await self._store.call(self._store.store.prune_seen, cutoff)

    async def close(self) -> None:
        for portal_id in list(self._mailboxes):
            await self._stop_portal(portal_id)
        await self._store.close()
