from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.partial_sends import ResumeMemory, send_parts
from engine.errors import ChannelError, PermanentSendError, RetryableSendError
from engine.models import DialogTarget, OutboundText, ReplyRequest
from tests.channels.conftest import route_for

ROUTE = route_for("telegram")
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key="42", customer_id="42")
REPLY = ReplyRequest(content=OutboundText(text="three parts"))


class ScriptedProvider:
    """Answers part sends in order: an id, or the error queued for that attempt."""

    def __init__(self, *failures: ChannelError | None) -> None:
        self.attempts: list[int] = []
        self._failures: Iterator[ChannelError | None] = iter(failures)

    async def send_part(self, index: int) -> str:
        self.attempts.append(index)
        failure = next(self._failures, None)
        if failure is not None:
            raise failure
        return f"id-{index}"


async def test_a_failure_before_any_part_went_out_is_raised_as_it_is() -> None:
    refused = RetryableSendError("throttled", 3)
    provider = ScriptedProvider(refused)
    with pytest.raises(RetryableSendError) as caught:
        await send_parts(provider.send_part, 3, retry_note="; note")
    assert caught.value is refused


async def test_a_later_failure_says_which_parts_went_out() -> None:
    provider = ScriptedProvider(None, RetryableSendError("throttled", 3))
    match = r"^part 2 of 3 failed after 1 sent: throttled; note$"
    with pytest.raises(RetryableSendError, match=match) as caught:
        await send_parts(provider.send_part, 3, retry_note="; note")
    assert caught.value.retry_after_s == 3
    provider = ScriptedProvider(None, None, PermanentSendError("blocked"))
    with pytest.raises(PermanentSendError, match=r"^part 3 of 3 failed after 2 sent: blocked$"):
        await send_parts(provider.send_part, 3, retry_note="; note")


async def test_a_retry_resumes_at_the_part_that_failed() -> None:
    memory = ResumeMemory(capacity=8)
    provider = ScriptedProvider(None, RetryableSendError("throttled"))
    with pytest.raises(RetryableSendError, match=r"; a retry resumes there$"):
        await memory.send(TARGET, REPLY, 3, provider.send_part)
    receipt = await memory.send(TARGET, REPLY, 3, provider.send_part)
    assert receipt.channel_message_ids == ("id-0", "id-1", "id-2")
    assert provider.attempts == [0, 1, 1, 2]


async def test_a_permanent_failure_is_forgotten() -> None:
    memory = ResumeMemory(capacity=8)
    provider = ScriptedProvider(None, PermanentSendError("blocked"))
    with pytest.raises(PermanentSendError):
        await memory.send(TARGET, REPLY, 2, provider.send_part)
    await memory.send(TARGET, REPLY, 2, provider.send_part)
    assert provider.attempts == [0, 1, 0, 1]


async def test_only_the_last_replies_up_to_the_capacity_are_remembered() -> None:
    memory = ResumeMemory(capacity=1)
    first, second = REPLY, ReplyRequest(content=OutboundText(text="another"))
    for request in (first, second):
        provider = ScriptedProvider(None, RetryableSendError("throttled"))
        with pytest.raises(RetryableSendError):
            await memory.send(TARGET, request, 2, provider.send_part)
    resumed, evicted = ScriptedProvider(), ScriptedProvider()
    await memory.send(TARGET, second, 2, resumed.send_part)
    await memory.send(TARGET, first, 2, evicted.send_part)
    assert (resumed.attempts, evicted.attempts) == ([1], [0, 1])
