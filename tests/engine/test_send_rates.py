"""Token buckets per connector and per chat on an injected clock (engine.delivery.send_rates)."""

from __future__ import annotations

from engine.clock import ManualClock
from engine.delivery.send_rates import (
    BucketLevel,
    KeptRate,
    Rate,
    SendPacer,
    SendRate,
    TokenBucket,
)


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


HOURLY = KeptRate("private_replies", Rate(per_s=1 / 60, burst=2), "2 now, then 1 a minute")


def test_a_kept_limit_names_itself_when_it_makes_the_longest_wait() -> None:
    pacer = SendPacer(ManualClock(start_s=0.0))
    rate = SendRate(per_connector=Rate(per_s=10, burst=10), kept=(HOURLY,))
    takes = [pacer.take(rate, "ig", chat) for chat in ("a", "b", "c")]
    assert [(t.delay_s, t.limit) for t in takes] == [(0.0, None), (0.0, None), (60.0, HOURLY.limit)]
    assert takes[-1].levels == (BucketLevel("ig", "private_replies", -1.0, 0.0),)
    assert pacer.take(SendRate(per_connector=Rate(per_s=10, burst=10)), "ig", "d").levels == ()


def test_a_restored_level_keeps_what_was_spent_but_not_future_reservations() -> None:
    clock = ManualClock(start_s=600.0)
    pacer = SendPacer(clock)
    # Stored at 0 s with 3 reservations outstanding (-3); 10 minutes refill 10 tokens: 7,
    # capped at the burst of 2.
    pacer.restore([BucketLevel("ig", "private_replies", -3.0, 0.0)])
    assert pacer.delay_s(SendRate(kept=(HOURLY,)), "ig", "a") == 0.0
    assert pacer.delay_s(SendRate(kept=(HOURLY,)), "ig", "b") == 0.0
    assert pacer.delay_s(SendRate(kept=(HOURLY,)), "ig", "c") == 60.0


def test_a_level_stored_a_moment_ago_still_holds_its_spent_tokens() -> None:
    bucket = TokenBucket.resumed(HOURLY.rate, BucketLevel("ig", "x", -5.0, 100.0), now=100.0)
    assert bucket.level() == (0.0, 100.0)  # the 5 reservations were never sent: dropped
    assert bucket.take(100.0) == 60.0  # but the bucket is empty, not refilled to its burst
