"""Replies to customers: stored before the portal hears 202, sent in order per dialog, settled
as a ``reply.sent`` or ``reply.failed`` event in the dialog's stream.

Operators' replies come through the portal API; the line's own texts (queue position,
outside hours, timeouts) come from the router. Both are stored by the dialog's owner and
settled through it (``ReplySettler``), so the outcome event shows the dialog as it stands
when the outcome joins the stream.

A provider's rate limit (Telegram 429 ``retry_after``) delays only the dialog it hit. A
retryable failure is tried again with backoff until the portal's TTL; a permanent one (the
user blocked the bot) fails at once with the provider's reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

import aiohttp

from engine.clock import Clock
from engine.config import PortalConfig
from engine.delivery.retry import backoff_delay_s
from engine.errors import EngineError, PermanentSendError, RetryableSendError
from engine.events import ReplyFailed, ReplyOrigin, ReplySent
from engine.metrics import Counters
from engine.models import DialogTarget, ReplyRequest, Route, SentReceipt
from engine.routing.state import DialogState
from engine.store.base import OutboxStore
from engine.store.records import StoredReply
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)


class ReplyChannel(Protocol):
    """The outbound half of a channel plug-in (``channels.base.Channel`` satisfies it)."""

    async def send(
        self, session: aiohttp.ClientSession, target: DialogTarget, request: ReplyRequest
    ) -> SentReceipt: ...


ChannelLookup = Callable[[str], ReplyChannel]
"""The channel of a connector id; raises ``NotFoundError`` for a removed connector."""


ReplyOutcome = ReplySent | ReplyFailed

ReplySettler = Callable[[StoredReply, ReplyOutcome], Awaitable[None]]
"""Records a reply's outcome in its dialog's stream and removes the stored reply."""


def target_of(dialog: DialogState, portal_id: str) -> DialogTarget:
    """What a channel needs to address the dialog's customer."""
    return DialogTarget(
        dialog_id=dialog.dialog_id,
        route=Route(
            portal_id=portal_id,
            line_id=dialog.line_id,
            connector_id=dialog.connector_id,
            channel=dialog.channel,
        ),
        dialog_key=dialog.dialog_key,
        customer_id=dialog.customer_id,
    )


def stored_reply(
    reply_id: str,
    target: DialogTarget,
    request: ReplyRequest,
    origin: ReplyOrigin,
    now: float,
) -> StoredReply:
    return StoredReply(
        reply_id=reply_id,
        portal_id=target.route.portal_id,
        dialog_id=target.dialog_id,
        target_json=target.model_dump_json().encode(),
        request_json=request.model_dump_json().encode(),
        created_at=now,
        attempts=0,
        next_attempt_at=now,
        origin=origin,
    )


class ReplySender:
    def __init__(
        self,
        portal: Callable[[], PortalConfig],
        store: ThreadedStore[OutboxStore],
        settle: ReplySettler,
        channel_for: ChannelLookup,
        session: aiohttp.ClientSession,
        clock: Clock,
        counters: Counters,
        rng: random.Random | None = None,
    ) -> None:
        self._portal = portal
        self._store = store
        self._settle_in_stream = settle
        self._channel_for = channel_for
        self._session = session
        self._clock = clock
        self._counters = counters
        self._rng = rng or random.Random()
        self._queues: dict[str, list[StoredReply]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    @property
    def portal_id(self) -> str:
        return self._portal().id

    async def start(self) -> None:
        for reply in await self._store.call(self._store.store.replies, self.portal_id):
            self.enqueue(reply)

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    def enqueue(self, reply: StoredReply) -> None:
        """Send a reply the owner has stored; replies of one dialog go out in order."""
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
        target = DialogTarget.model_validate_json(reply.target_json)
        request = ReplyRequest.model_validate_json(reply.request_json)
        portal = self._portal()
        while True:
            wait_s = reply.next_attempt_at - self._clock.now()
            if wait_s > 0:
                await self._clock.sleep(wait_s)
            result = await self._attempt(target, request, reply)
            if not isinstance(result, RetryableSendError):
                outcome = result
                break
            expires_at = reply.created_at + portal.ttl_s
            if self._clock.now() >= expires_at:
                outcome = self._failed(reply, request, "expired", f"not sent within ttl: {result}")
                break
            reply = await self._schedule_retry(reply, expires_at, result.retry_after_s)
        await self._settle_in_stream(reply, outcome)
        self._counters.inc(
            "openlines_replies_total",
            portal=self.portal_id,
            outcome="reply.sent" if isinstance(outcome, ReplySent) else "reply.failed",
        )

    async def _attempt(
        self, target: DialogTarget, request: ReplyRequest, reply: StoredReply
    ) -> ReplyOutcome | RetryableSendError:
        dialog_id = target.dialog_id
        try:
            channel = self._channel_for(target.route.connector_id)
            receipt: SentReceipt = await channel.send(self._session, target, request)
        except RetryableSendError as exc:
            log.warning("reply %s to %s: retryable: %s", reply.reply_id, dialog_id, exc)
            return exc
        except (PermanentSendError, EngineError) as exc:
            return self._failed(reply, request, exc.reason, str(exc))
        except Exception as exc:  # a plug-in boundary: a bug must not strand the reply
            log.exception("reply %s to %s: the channel failed", reply.reply_id, dialog_id)
            self._counters.inc("openlines_rejected_total", reason="channel_bug")
            error = f"{type(exc).__name__}: {exc}"
            return self._failed(reply, request, EngineError.reason, error)
        return ReplySent(
            reply_id=reply.reply_id,
            client_id=request.client_id,
            origin=reply.origin,
            channel_message_ids=receipt.channel_message_ids,
        )

    def _failed(
        self, reply: StoredReply, request: ReplyRequest, reason: str, error: str
    ) -> ReplyFailed:
        return ReplyFailed(
            reply_id=reply.reply_id,
            client_id=request.client_id,
            origin=reply.origin,
            reason=reason,
            error=error,
        )

    async def _schedule_retry(
        self, reply: StoredReply, expires_at: float, retry_after_s: float | None
    ) -> StoredReply:
        portal = self._portal()
        delay = backoff_delay_s(
            reply.attempts, portal.retry_initial_s, portal.retry_max_s, self._rng, retry_after_s
        )
        next_at = min(self._clock.now() + delay, expires_at)
        await self._store.call(self._store.store.schedule_reply_retry, reply.reply_id, next_at)
        return replace(reply, attempts=reply.attempts + 1, next_attempt_at=next_at)
