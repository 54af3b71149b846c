"""A batch on its way, as the delivery scheduler (``engine.delivery.scheduler``) tracks it,
and what a round writes for it.

A ``Flight`` is a claimed batch of one stream from its claim until it is delivered or its
events are gone; the stream forms no other batch meanwhile (one batch in flight per stream).
A round writes a ``FlightWrite`` for each flight with news (an outcome, or an attempt about
to start) and a ``StreamClaim`` for each ready stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine.delivery.attempts import Tally
from engine.delivery.mailbox import PortalMailbox
from engine.store.records import Batch, BatchClaim, BatchWrite


class Flight:
    """A claimed batch of one stream, from its claim until it is delivered or gone."""

    __slots__ = ("batch", "generation", "mailbox", "resumed", "stream", "task")

    def __init__(self, mailbox: PortalMailbox, stream: int, batch: Batch, resumed: bool) -> None:
        self.mailbox = mailbox
        self.stream = stream
        self.batch = batch
        self.generation = mailbox.generation
        self.resumed = resumed
        """Left open by a restart: the mailbox forms no new batch until these are done."""
        self.task: asyncio.Task[None] | None = None

    @property
    def current(self) -> bool:
        """Its mailbox still runs the streams it was claimed for."""
        return self.generation == self.mailbox.generation and not self.mailbox.stopped


@dataclass(slots=True)
class FlightWrite:
    """A flight's part of a round: an outcome (``start`` False) or an attempt starting."""

    flight: Flight
    write: BatchWrite
    tally: Tally
    start: bool
    waiting: Batch | None = None
    """After an outcome: the batch as it waits for its retry; ``None``: the flight is done."""


@dataclass(slots=True)
class StreamClaim:
    """A ready stream's part of a round: a batch of its oldest events to claim."""

    mailbox: PortalMailbox
    stream: int
    generation: int
    claim: BatchClaim
