"""Token bucket driven by a fake clock."""

from __future__ import annotations

import pytest
from redrive.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_one_second_of_messages_through_at_once():
    clock = FakeClock()
    bucket = TokenBucket(20, clock=clock)
    assert bucket.reserve(10) == 0
    assert bucket.reserve(10) == 0
    assert bucket.reserve(10) == pytest.approx(0.5)


def test_a_batch_larger_than_the_burst_waits_for_its_debt():
    bucket = TokenBucket(2, clock=FakeClock())
    assert bucket.reserve(10) == pytest.approx(4.0)


def test_tokens_refill_with_time_but_not_beyond_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock)
    assert bucket.reserve(5) == 0
    clock.now += 60
    assert bucket.reserve(5) == 0
    assert bucket.reserve(5) == pytest.approx(1.0)


def test_waiting_as_told_holds_the_average_rate():
    clock = FakeClock()
    bucket = TokenBucket(7, clock=clock)
    start = clock.now
    for _ in range(100):
        clock.now += bucket.reserve(10)
    # 1,000 messages at 7/s, less the first second's burst of 7.
    assert clock.now - start == pytest.approx((1000 - 7) / 7)


@pytest.mark.parametrize("rate", [0, -1])
def test_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match="rate_per_second"):
        TokenBucket(rate)
