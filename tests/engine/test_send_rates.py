"""Token buckets per connector and per chat on an injected clock (engine.delivery.send_rates)."""

from __future__ import annotations

from engine.clock import ManualClock
from engine.delivery.send_rates import Rate, SendPacer, SendRate, TokenBucket


def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    bucket = TokenBucket(Rate(per_s=2, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.5  # reserved: usable in half a second
    assert bucket.take(0.0) == 1.0  # the next waiter after it
    assert bucket.take(10.0) == 0.0  # refilled, never above the burst
    assert not bucket.idle(10.0) and bucket.idle(11.0)


def test_the_connector_limit_paces_all_chats_and_the_chat_limit_one() -> None:
    clock = ManualClock(start_s=100.0)
    pacer = SendPacer(clock)
    rate = SendRate(per_connector=Rate(per_s=10, burst=2), per_chat=Rate(per_s=1))
    delays = [pacer.delay_s(rate, "bot", chat) for chat in ("a", "b", "c")]
    assert delays == [0.0, 0.0, 0.1]  # the connector's burst of two, then 10 a second
    assert pacer.delay_s(rate, "bot", "a") == 1.0  # chat a's second message waits a second
    assert pacer.delay_s(rate, "other-bot", "a") == 0.0  # another connector's buckets


def test_no_limits_never_wait() -> None:
    pacer = SendPacer(ManualClock())
    assert {pacer.delay_s(SendRate(), "bot", "a") for _ in range(100)} == {0.0}
