"""What a batch's attempts write: before an attempt, and once its outcome is known.

Pure decisions over a ``Batch`` in memory, the portal's config and the time; the scheduler
(``engine.delivery.scheduler``) writes them in groups and counts them once committed.

What a portal can rely on (docs/protocol.md, "Ordering and de-duplication"): an event's
delivery kind is fixed when it is claimed into a batch. A guaranteed event is retried until
it is delivered or its TTL sends it to dead letters, so every ``seq`` ends up at the portal
or in dead letters. A best-effort event has one attempt: dropped, never dead-lettered, when
that attempt fails or its outcome was lost (a restart, a failed step). Attempts are counted
before the POST, so ``attempt`` grows across restarts too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace

from engine.config import PortalConfig
from engine.delivery.retry import backoff_delay_s
from engine.delivery.transport import DeliveryOutcome
from engine.metrics import Counters
from engine.store.records import Batch, BatchWrite, EventDrop

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tally:
    """What a write did, for the counters once it is committed."""

    delivered: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    retried: bool = False


def expiry(batch: Batch, portal: PortalConfig) -> float:
    """When the batch's oldest event reaches its TTL: no retry is scheduled past it."""
    return batch.oldest_received_at + portal.ttl_s


def before_attempt(batch: Batch, portal: PortalConfig, now: float) -> tuple[BatchWrite, Tally]:
    """Attempt ``batch.attempts + 1`` is counted (the POST follows the commit); first the
    events past their TTL leave (guaranteed ones to dead letters, with their ``seq``), and
    best-effort events whose attempt already happened (its outcome lost to a restart or a
    failed step) leave too: at most once, so not again."""
    ttl = portal.ttl_s
    expired = [e for e in batch.events if now >= e.received_at + ttl]
    reason = f"not delivered within ttl_s={ttl} after {batch.attempts} attempts"
    dead = tuple(e.rowid for e in expired if not e.best_effort)
    gone = {e.rowid for e in expired}
    dropped = tuple(e.rowid for e in expired if e.best_effort)
    lost: tuple[int, ...] = ()
    if batch.attempts:
        lost = tuple(e.rowid for e in batch.events if e.best_effort and e.rowid not in gone)
    drops = (
        EventDrop(dead, reason, dead_letter=True),
        EventDrop(dropped, f"best effort: {reason}", dead_letter=False),
        EventDrop(
            lost,
            f"best effort, one attempt: attempt {batch.attempts} ended without an outcome",
            dead_letter=False,
        ),
    )
    write = BatchWrite(
        batch.batch_id,
        drops=tuple(drop for drop in drops if drop.rowids),
        attempts=batch.attempts + 1,
        reload=True,
    )
    return write, Tally(dead_lettered=len(dead), dropped=len(dropped) + len(lost))


def delivered(batch: Batch) -> tuple[BatchWrite, Tally]:
    """The portal took the batch: it leaves the outbox."""
    return BatchWrite(batch.batch_id, ack=True), Tally(delivered=len(batch.events))


def failed(
    batch: Batch,
    portal: PortalConfig,
    outcome: DeliveryOutcome,
    now: float,
    rng: random.Random,
) -> tuple[BatchWrite, Tally, Batch | None]:
    """The attempt failed: its best-effort events had their one attempt and leave; the rest
    is tried again after a backoff (``Retry-After`` first), never past the TTL. Also
    returns the batch as it waits for that, or ``None`` when nothing is left of it."""
    best_effort = tuple(e.rowid for e in batch.events if e.best_effort)
    left = tuple(e for e in batch.events if not e.best_effort)
    drops: tuple[EventDrop, ...] = ()
    if best_effort:
        drops = (EventDrop(best_effort, f"best effort, one attempt: {outcome.error}", False),)
    if not left:
        return BatchWrite(batch.batch_id, drops=drops), Tally(dropped=len(best_effort)), None
    waiting = replace(batch, events=left)
    delay = backoff_delay_s(
        batch.attempts - 1,
        portal.retry_initial_s,
        portal.retry_max_s,
        rng,
        outcome.retry_after_s,
    )
    next_at = min(now + delay, expiry(waiting, portal))
    write = BatchWrite(batch.batch_id, drops=drops, next_attempt_at=next_at, error=outcome.error)
    tally = Tally(dropped=len(best_effort), retried=True)
    return write, tally, replace(waiting, next_attempt_at=next_at)


def count(counters: Counters, portal: PortalConfig, tally: Tally) -> None:
    """Count what a committed write did (and log events going to dead letters)."""
    portal_id = portal.id
    if tally.delivered:
        counters.inc("openlines_delivered_total", tally.delivered, portal=portal_id)
        counters.inc("openlines_batches_delivered_total", portal=portal_id)
    if tally.dead_lettered:
        counters.inc("openlines_dead_lettered_total", tally.dead_lettered, portal=portal_id)
        log.error(
            "portal %s: %d events to dead letters: not delivered within ttl_s=%d",
            portal_id,
            tally.dead_lettered,
            portal.ttl_s,
            extra={"portal": portal_id},
        )
    if tally.dropped:
        counters.inc("openlines_dropped_total", tally.dropped, portal=portal_id)
    if tally.retried:
        counters.inc("openlines_retried_total", portal=portal_id)
