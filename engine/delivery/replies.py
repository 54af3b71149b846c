"""Operator replies: stored before the portal hears 202, sent in order per dialog, settled
as a ``reply.sent`` or ``reply.failed`` event in the portal's own outbox.

A provider's rate limit (Telegram 429 ``retry_after``) delays only the dialog it hit. A
retryable failure is tried again with backoff until the portal's TTL; a permanent one (the
user blocked the bot) fails at once with the provider's reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp
import orjson

from engine.clock import Clock
from engine.delivery.mailbox import PortalMailbox, dialog_json
from engine.delivery.retry import backoff_delay_s
from engine.errors import EngineError, PermanentSendError, RetryableSendError
from engine.ids import new_id
from engine.metrics import Counters
from engine.models import DialogInfo, DialogTarget, ReplyRequest, Route, SentReceipt
from engine.store.base import OutboxStore
from engine.store.records import OutboxRecord, StoredReply, dialog_hash, dialog_ref
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)


class ReplyChannel(Protocol):
    """The outbound half of a channel plug-in (``channels.base.Channel`` satisfies it)."""

    async def send(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt: ...


ChannelLookup = Callable[[str], ReplyChannel]
"""The channel of a connector id; raises ``NotFoundError`` for a removed connector."""


@dataclass(frozen=True)
class ReplyOutcome:
    kind: str
    data: dict[str, object]


def target_of(dialog: DialogInfo) -> DialogTarget:
    return DialogTarget(
        dialog_id=dialog.dialog_id,
        route=Route(
            portal_id=dialog.portal_id,
            line_id=dialog.line_id,
            connector_id=dialog.connector_id,
            channel=dialog.channel,
        ),
        dialog_key=dialog.dialog_key,
        customer_id=dialog.customer_id,
    )


class ReplySender:
    def __init__(
        self,
        mailbox: PortalMailbox,
        store: ThreadedStore[OutboxStore],
        channel_for: ChannelLookup,
        session: aiohttp.ClientSession,
        clock: Clock,
        counters: Counters,
        rng: random.Random | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._store = store
        self._channel_for = channel_for
        self._session = session
        self._clock = clock
        self._counters = counters
        self._rng = rng or random.Random()
        self._queues: dict[str, list[StoredReply]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    @property
    def portal_id(self) -> str:
        return self._mailbox.portal.id

    async def start(self) -> None:
        for reply in await self._store.call(self._store.store.replies, self.portal_id):
            self._enqueue(reply)

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    async def submit(self, dialog: DialogInfo, request: ReplyRequest) -> str:
        """Store the reply durably and queue it; returns its id."""
        now = self._clock.now()
        reply = StoredReply(
            reply_id=new_id("rpl"),
            portal_id=self.portal_id,
            dialog_id=dialog.dialog_id,
            target_json=dialog.model_dump_json().encode(),
            request_json=request.model_dump_json().encode(),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
        await self._store.call(self._store.store.add_reply, reply)
        self._enqueue(reply)
        return reply.reply_id

    def _enqueue(self, reply: StoredReply) -> None:
        self._queues.setdefault(reply.dialog_id, []).append(reply)
        worker = self._workers.get(reply.dialog_id)
        if worker is None or worker.done():
            self._workers[reply.dialog_id] = asyncio.create_task(self._work(reply.dialog_id))

    async def _work(self, dialog_id: str) -> None:
        queue = self._queues[dialog_id]
        while queue:
            await self._settle(queue[0])
            queue.pop(0)
        del self._queues[dialog_id]

    async def _settle(self, reply: StoredReply) -> None:
        dialog = DialogInfo.model_validate_json(reply.target_json)
        request = ReplyRequest.model_validate_json(reply.request_json)
        portal = self._mailbox.portal
        while True:
            wait_s = reply.next_attempt_at - self._clock.now()
            if wait_s > 0:
                await self._clock.sleep(wait_s)
            result = await self._attempt(dialog, request, reply)
            if isinstance(result, ReplyOutcome):
                outcome = result
                break
            expires_at = reply.created_at + portal.ttl_s
            if self._clock.now() >= expires_at:
                outcome = self._failed(reply, request, "expired", f"not sent within ttl: {result}")
                break
            reply = await self._schedule_retry(reply, expires_at, result.retry_after_s)
        await self._record(dialog, reply, outcome)

    async def _attempt(
        self, dialog: DialogInfo, request: ReplyRequest, reply: StoredReply
    ) -> ReplyOutcome | RetryableSendError:
        try:
            channel = self._channel_for(dialog.connector_id)
            receipt: SentReceipt = await channel.send(self._session, target_of(dialog), request)
        except RetryableSendError as exc:
            log.warning("reply %s to %s: retryable: %s", reply.reply_id, dialog.dialog_id, exc)
            return exc
        except (PermanentSendError, EngineError) as exc:
            return self._failed(reply, request, exc.reason, str(exc))
        except Exception as exc:  # a plug-in boundary: a bug must not strand the reply
            log.exception("reply %s to %s: the channel failed", reply.reply_id, dialog.dialog_id)
            self._counters.inc("openlines_rejected_total", reason="channel_bug")
            error = f"{type(exc).__name__}: {exc}"
            return self._failed(reply, request, EngineError.reason, error)
        return ReplyOutcome(
            "reply.sent",
            {
                "reply_id": reply.reply_id,
                "client_id": request.client_id,
                "channel_message_ids": list(receipt.channel_message_ids),
            },
        )

    def _failed(
        self, reply: StoredReply, request: ReplyRequest, reason: str, error: str
    ) -> ReplyOutcome:
        return ReplyOutcome(
            "reply.failed",
            {
                "reply_id": reply.reply_id,
                "client_id": request.client_id,
                "reason": reason,
                "error": error,
            },
        )

    async def _schedule_retry(
        self, reply: StoredReply, expires_at: float, retry_after_s: float | None
    ) -> StoredReply:
        portal = self._mailbox.portal
        delay = backoff_delay_s(
            reply.attempts, portal.retry_initial_s, portal.retry_max_s, self._rng, retry_after_s
        )
        next_at = min(self._clock.now() + delay, expires_at)
        await self._store.call(self._store.store.schedule_reply_retry, reply.reply_id, next_at)
        return replace(reply, attempts=reply.attempts + 1, next_attempt_at=next_at)

    async def _record(self, dialog: DialogInfo, reply: StoredReply, outcome: ReplyOutcome) -> None:
        ref = dialog_ref(dialog.connector_id, dialog.dialog_key)
        record = OutboxRecord(
            portal_id=self.portal_id,
            event_id=new_id("evt"),
            kind=outcome.kind,
            dialog_ref=ref,
            order_key=0,
            received_at=self._clock.now(),
            payload=orjson.dumps(outcome.data),
            dialog_json=dialog_json(dialog, opened=False),
        )
        await self._store.call(
            self._store.store.settle_reply, reply.reply_id, record, self._clock.now()
        )
        self._counters.inc("openlines_replies_total", portal=self.portal_id, outcome=outcome.kind)
        self._mailbox.notify([dialog_hash(ref)])
