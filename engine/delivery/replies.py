"""Replies to customers: stored before the portal hears 202, sent in order per dialog, settled
as a ``reply.sent``, ``reply.failed`` or ``reply.uncertain`` event in the dialog's stream.

Operators' replies come through the portal API; the line's own texts (queue position,
outside hours, timeouts) come from the router. Both are stored by the dialog's owner and
settled through it (``ReplySettler``), so the outcome event shows the dialog as it stands
when the outcome joins the stream.

A provider's limits are kept before each attempt (``send_rates``): a wait delays only its
dialog, and a long one is told to the portal as ``reply.queued`` (the reply is stored and
goes out by itself). A provider's throttling answer (Telegram 429 ``retry_after``) delays
only the dialog it hit. A
retryable failure is tried again with backoff until the portal's TTL; a permanent one (the
user blocked the bot) fails at once with the provider's reason.

Every attempt is recorded before the channel is called. A reply loaded after a restart with
an attempt still recorded as started was cut short while the provider may have had it: it
is sent again only through a channel whose sends are safe to repeat (``idempotent_sends``:
VK drops a repeated ``random_id``, a custom connector's receiver de-duplicates on
``reply_id``); through any other (Telegram, Viber) it settles as ``reply.uncertain`` and the
operator decides, rather than the customer perhaps reading it twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

import aiohttp

from engine.clock import Clock
from engine.config import PortalConfig
from engine.delivery.retry import backoff_delay_s
from engine.delivery.send_rates import BucketLevel, Pacing, SendPacer, SendRate
from engine.errors import EngineError, PermanentSendError, RetryableSendError
from engine.events import (
    ReplyFailed,
    ReplyOrigin,
    ReplyQueued,
    ReplySent,
    ReplyUncertain,
    event_type,
)
from engine.metrics import Counters
from engine.models import DialogTarget, ReplyRequest, Route, SentReceipt
from engine.routing.state import DialogState
from engine.routing.windows import ReplyWindow
from engine.store.base import OutboxStore
from engine.store.records import StoredReply
from engine.store.threaded import ThreadedStore

log = logging.getLogger(__name__)


class ReplyChannel(Protocol):
    """The outbound half of a channel plug-in (``channels.base.Channel`` satisfies it)."""

    @property
    def idempotent_sends(self) -> bool:
        """Whether sending a reply again under the same ``reply_id`` is harmless."""
        ...

    @property
    def shows_sender(self) -> bool:
        """Whether the customer sees which operator sent a reply."""
        ...

    def reply_window_for(self, dialog_key: str) -> ReplyWindow | None:
        """The dialog's messaging window (None: replies are taken at any time)."""
        ...

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt: ...

    async def send_outside_window(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        """A reply accepted after the dialog's window closed, in the channel's other form."""
        ...


ChannelLookup = Callable[[str], ReplyChannel]
"""The channel of a connector id; raises ``NotFoundError`` for a removed connector."""


ReplyOutcome = ReplySent | ReplyFailed | ReplyUncertain

ReplySettler = Callable[[StoredReply, ReplyOutcome], Awaitable[None]]
"""Records a reply's outcome in its dialog's stream and removes the stored reply."""

ReplyNoter = Callable[[StoredReply, ReplyQueued], Awaitable[None]]
"""Records that a reply waits (``reply.queued``) in its dialog's stream; it stays stored."""

QUEUED_NOTICE_S = 5.0
"""A pacing wait at least this long is told to the portal as ``reply.queued``; shorter
ones (Telegram's second per chat) would only add noise."""


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
        address=dialog.address,
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
        note_queued: ReplyNoter | None = None,
    ) -> None:
        self._portal = portal
        self._note_queued = note_queued
        self._store = store
        self._settle_in_stream = settle
        self._channel_for = channel_for
        self._session = session
        self._clock = clock
        self._counters = counters
        self._rng = rng or random.Random()
        self._queues: dict[str, list[StoredReply]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pacer = SendPacer(clock)

    @property
    def portal_id(self) -> str:
        return self._portal().id

    async def start(
        self,
        stored: Sequence[StoredReply] | None = None,
        levels: Sequence[BucketLevel] | None = None,
    ) -> None:
        """Send what was stored and not settled before, paced by the kept buckets' stored
        levels (both read by the host with the portal's start-up, or here)."""
        store = self._store
        if stored is None:
            stored = await store.call(store.store.replies, self.portal_id)
        if levels is None:
            levels = await store.call(store.store.send_buckets, self.portal_id)
        self._pacer.restore(levels)
        for reply in stored:
            self.enqueue(reply)

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    @property
    def idle(self) -> bool:
        """No reply waiting or being sent."""
        return not self._queues and all(worker.done() for worker in self._workers.values())

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
        outcome = await self._outcome(reply)
        await self._settle_in_stream(reply, outcome)
        self._counters.inc(
            "openlines_replies_total", portal=self.portal_id, outcome=event_type(outcome)
        )

    async def _outcome(self, reply: StoredReply) -> ReplyOutcome:
        """Attempt until the reply is sent, fails for good or expires; or, for a reply whose
        attempt a restart cut short, decide whether it may be sent again at all."""
        target = DialogTarget.model_validate_json(reply.target_json)
        request = ReplyRequest.model_validate_json(reply.request_json)
        if reply.attempt_started_at is not None:
            uncertain = self._interrupted(reply, request, target)
            if uncertain is not None:
                return uncertain
        expires_at = reply.created_at + self._portal().ttl_s
        while True:
            wait_s = reply.next_attempt_at - self._clock.now()
            if wait_s > 0:
                await self._clock.sleep(wait_s)
            channel = self._lookup(reply, request, target)
            if isinstance(channel, ReplyFailed):
                return channel
            await self._pace(reply, request, channel, target)
            reply = await self._start_attempt(reply, channel)
            result = await self._attempt(channel, target, request, reply)
            if not isinstance(result, RetryableSendError):
                return result
            if self._clock.now() >= expires_at:
                return self._failed(reply, request, "expired", f"not sent within ttl: {result}")
            reply = await self._schedule_retry(reply, expires_at, result.retry_after_s)

    async def _pace(
        self, reply: StoredReply, request: ReplyRequest, channel: ReplyChannel, target: DialogTarget
    ) -> None:
        """Take the send's tokens (storing the kept buckets' levels first) and wait for them;
        a long wait is told to the portal before it starts."""
        pacing = self._pacer.take(
            _send_rate(channel, target), target.route.connector_id, target.dialog_key
        )
        if pacing.levels:
            store = self._store
            await store.call(store.store.save_send_buckets, self.portal_id, pacing.levels)
        if pacing.delay_s >= QUEUED_NOTICE_S and self._note_queued is not None:
            await self._note_queued(reply, self._queued(reply, request, pacing))
        if pacing.delay_s > 0:
            await self._clock.sleep(pacing.delay_s)

    def _queued(self, reply: StoredReply, request: ReplyRequest, pacing: Pacing) -> ReplyQueued:
        return ReplyQueued(
            reply_id=reply.reply_id,
            client_id=request.client_id,
            origin=reply.origin,
            send_at=self._clock.now() + pacing.delay_s,
            limit=pacing.limit or "the channel's send rate",
        )

    def _interrupted(
        self, reply: StoredReply, request: ReplyRequest, target: DialogTarget
    ) -> ReplyUncertain | None:
        """A reply loaded with attempt ``reply.attempts`` started and never answered: None
        when its channel drops repeats (send it again), else the uncertain outcome."""
        channel = self._lookup(reply, request, target)
        if isinstance(channel, ReplyFailed):
            why = f"and it cannot be sent again ({channel.error})"
        elif _repeats_are_harmless(channel):
            log.info(
                "reply %s to %s: attempt %d was cut short; sending again (%s drops repeats)",
                reply.reply_id,
                target.dialog_id,
                reply.attempts,
                target.route.channel,
            )
            return None
        else:
            why = f"and {target.route.channel} cannot tell a repeat from a new message"
        log.warning(
            "reply %s to %s: attempt %d was cut short; not sent again",
            reply.reply_id,
            target.dialog_id,
            reply.attempts,
        )
        return ReplyUncertain(
            reply_id=reply.reply_id,
            client_id=request.client_id,
            origin=reply.origin,
            reason="interrupted",
            attempts=reply.attempts,
            error=(
                f"the engine stopped during attempt {reply.attempts}, before {target.route.channel}"
                f" answered: the customer may have it, {why}"
            ),
        )

    def _lookup(
        self, reply: StoredReply, request: ReplyRequest, target: DialogTarget
    ) -> ReplyChannel | ReplyFailed:
        """The dialog's channel, or the failure of a reply that has none."""
        try:
            return self._channel_for(target.route.connector_id)
        except EngineError as exc:  # a removed connector
            return self._failed(reply, request, exc.reason, str(exc))
        except Exception as exc:  # a plug-in boundary: building the channel may fail
            log.exception("reply %s: no channel for %s", reply.reply_id, target.route.connector_id)
            self._counters.inc("openlines_rejected_total", reason="channel_bug")
            error = f"{type(exc).__name__}: {exc}"
            return self._failed(reply, request, EngineError.reason, error)

    async def _start_attempt(self, reply: StoredReply, channel: ReplyChannel) -> StoredReply:
        """Record the attempt before the provider can have the reply; durably (surviving a
        power cut) when a repeat would reach the customer twice."""
        attempt, now = reply.attempts + 1, self._clock.now()
        store = self._store
        await store.call(
            store.store.start_reply_attempt,
            reply.reply_id,
            attempt,
            now,
            not _repeats_are_harmless(channel),
        )
        return replace(reply, attempts=attempt, attempt_started_at=now)

    async def _attempt(
        self,
        channel: ReplyChannel,
        target: DialogTarget,
        request: ReplyRequest,
        reply: StoredReply,
    ) -> ReplySent | ReplyFailed | RetryableSendError:
        dialog_id = target.dialog_id
        # A reply accepted after the window closed goes in the channel's other form
        # (docs/channels/contract.md, "Messaging windows").
        send = channel.send if request.outside_window_form is None else channel.send_outside_window
        try:
            receipt = await send(self._session, target, request, reply_id=reply.reply_id)
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
            form=receipt.form,
            template=receipt.template,
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
            form=request.outside_window_form or "message",
        )

    async def _schedule_retry(
        self, reply: StoredReply, expires_at: float, retry_after_s: float | None
    ) -> StoredReply:
        portal = self._portal()
        delay = backoff_delay_s(
            reply.attempts - 1, portal.retry_initial_s, portal.retry_max_s, self._rng, retry_after_s
        )
        next_at = min(self._clock.now() + delay, expires_at)
        await self._store.call(self._store.store.schedule_reply_retry, reply.reply_id, next_at)
        return replace(reply, next_attempt_at=next_at, attempt_started_at=None)


def _send_rate(channel: ReplyChannel, target: DialogTarget) -> SendRate:
    # Read defensively, like ``idempotent_sends``: a plug-in that declares no limits is paced
    # by nothing but the provider's own throttling answers. ``send_rate_for`` names the
    # limits of one send where they differ by dialog (Instagram's private comment replies).
    rate_for = getattr(channel, "send_rate_for", None)
    rate = rate_for(target) if callable(rate_for) else getattr(channel, "send_rate", None)
    return rate if isinstance(rate, SendRate) else SendRate()


def _repeats_are_harmless(channel: ReplyChannel) -> bool:
    # Read defensively: a plug-in that does not say is one whose sends are not safe to
    # repeat, and a missing attribute must not end the dialog's worker (stranding replies).
    return bool(getattr(channel, "idempotent_sends", False))
