"""Replies that go out as several messages, and what a failure half-way through means.

A long text, or media with a caption too long to ride along, is sent as parts, one API call
each. When part k fails after earlier parts reached the customer, the provider's error alone
would hide that: the engine would retry the whole reply and the customer would get the
earlier parts twice. So a failure after the first part says which parts went out, and a
channel either remembers them (``ResumeMemory``, for providers without an idempotency key)
or relies on the provider dropping repeats (VK's ``random_id``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from engine.errors import ChannelError, PermanentSendError, RetryableSendError
from engine.models import DialogTarget, ReplyRequest, SentReceipt

SendPart = Callable[[int], Awaitable[str]]
"""Sends part ``index`` of a reply; returns the provider's message id or raises a send error."""


async def send_parts(
    send_part: SendPart, total: int, *, retry_note: str, sent: list[str] | None = None
) -> SentReceipt:
    """Send parts ``len(sent)`` to ``total - 1`` in order, appending their ids to ``sent``.

    ``sent`` holds the ids of parts that already went out (a resumed reply); it is extended
    in place, so after a failure it names what the customer has. A failure before any part
    went out is raised as it is. A later one becomes "part k of n failed after m sent": a
    ``RetryableSendError`` ending in ``retry_note`` (what a retry will do about the parts
    sent) when the provider's error was retryable, a ``PermanentSendError`` otherwise.
    """
    sent = [] if sent is None else sent
    for index in range(len(sent), total):
        try:
            sent.append(await send_part(index))
        except ChannelError as exc:
            if not sent:
                raise
            message = f"part {index + 1} of {total} failed after {len(sent)} sent: {exc}"
            if isinstance(exc, RetryableSendError):
                raise RetryableSendError(message + retry_note, exc.retry_after_s) from exc
            raise PermanentSendError(message) from exc
    return SentReceipt(channel_message_ids=tuple(sent))


class ResumeMemory:
    """The parts sent of replies that failed part-way with a retryable error, so a retry of
    the same reply resumes at the part that failed instead of resending the others.

    ``send`` gives a channel no outbound id, so "the same reply" means an equal target and
    request. The memory is in this process only and keeps the last ``capacity`` replies:
    after a restart, or once evicted, a retry resends the whole reply. A permanent failure
    forgets the reply, and a new send of it starts over.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._sent: OrderedDict[tuple[DialogTarget, ReplyRequest], list[str]] = OrderedDict()

    async def send(
        self, target: DialogTarget, request: ReplyRequest, total: int, send_part: SendPart
    ) -> SentReceipt:
        """``send_parts`` for this reply, starting after the parts an earlier try sent."""
        key = (target, request)
        sent = self._sent.pop(key, [])
        try:
            return await send_parts(
                send_part, total, retry_note="; a retry resumes there", sent=sent
            )
        except RetryableSendError:
            if sent:
                self._remember(key, sent)
            raise

    def _remember(self, key: tuple[DialogTarget, ReplyRequest], sent: list[str]) -> None:
        self._sent[key] = sent
        while len(self._sent) > self._capacity:
            self._sent.popitem(last=False)
