"""Pure policy functions: backoff, failure decisions, heartbeats, breaker, memory guard."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from worker.policy import (
    BreakerState,
    CircuitBreaker,
    DeadLetter,
    FootprintEstimator,
    Retry,
    attempt_number,
    backoff_seconds,
    decide_failure,
    deferral_delay,
    heartbeat_extension,
    memory_paused,
    receive_count,
)


def test_attempt_counts_receives_plus_attempts_spent_before_a_deferral():
    assert attempt_number(1, 0) == 1
    assert attempt_number(3, 0) == 3
    assert attempt_number(1, 2) == 3  # re-sent after two real attempts: this receive is the third
    assert attempt_number(0, 0) == 1


def test_backoff_doubles_per_attempt_with_half_guaranteed():
    assert [backoff_seconds(a, base=2, cap=900, jitter=0) for a in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert [backoff_seconds(a, base=2, cap=900, jitter=0.999) for a in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_seconds(30, base=2, cap=900, jitter=0) == 450


@given(st.integers(1, 60), st.floats(0.1, 100), st.floats(1, 43200), st.floats(0, 0.9999))
def test_backoff_stays_within_half_step_and_cap(attempt, base, cap, jitter):
    delay = backoff_seconds(attempt, base, cap, jitter)
    step = min(cap, base * 2 ** (attempt - 1), 43200)
    assert step / 2 <= delay <= step + 1
    assert 0 <= delay <= 43200


def test_failure_decision():
    assert decide_failure(True, 1, 5, 2, 900, 0) == DeadLetter("permanent")
    assert decide_failure(False, 5, 5, 2, 900, 0) == DeadLetter("attempts-exhausted")
    assert decide_failure(False, 2, 5, 2, 900, 0) == Retry(2)


def test_heartbeat_only_when_due_and_never_past_the_job_deadline():
    # visibility 30 s, job may run 100 s from t=0
    assert (
        heartbeat_extension(now=10, visible_at=30, job_deadline=100, visibility_timeout=30, received_at=0)
        is None
    )
    assert (
        heartbeat_extension(now=16, visible_at=30, job_deadline=100, visibility_timeout=30, received_at=0)
        == 30
    )
    assert (
        heartbeat_extension(now=90, visible_at=100, job_deadline=100, visibility_timeout=30, received_at=0)
        == 10
    )
    assert (
        heartbeat_extension(now=99.5, visible_at=100, job_deadline=100, visibility_timeout=30, received_at=0)
        == 1
    )
    assert (
        heartbeat_extension(now=101, visible_at=100, job_deadline=100, visibility_timeout=30, received_at=0)
        is None
    )
    # SQS's 12 h limit from the receive caps an unbounded deadline
    assert (
        heartbeat_extension(
            now=43190, visible_at=43195, job_deadline=float("inf"), visibility_timeout=30, received_at=0
        )
        == 10
    )


def test_breaker_opens_after_threshold_then_half_open_trial_decides():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=60)
    assert not breaker.record_failure("report", now=0)
    assert not breaker.record_failure("report", now=1)
    assert breaker.record_failure("report", now=2)  # third consecutive failure opens it
    assert breaker.state("report", 10) is BreakerState.OPEN
    assert not breaker.allow("report", 10) and breaker.allow("onboarding", 10)  # per type
    assert breaker.retry_after("report", 10) == 52

    assert breaker.state("report", 62) is BreakerState.HALF_OPEN
    assert breaker.allow("report", 62)  # the single trial
    assert not breaker.allow("report", 62)  # others wait while it runs
    assert breaker.retry_after("report", 62) == 15  # a quarter cooldown, not a 1 s spin
    assert breaker.record_failure("report", 63)  # trial failed: open again, cooldown restarts
    assert breaker.state("report", 100) is BreakerState.OPEN

    assert breaker.allow("report", 124)
    breaker.record_success("report")
    assert breaker.state("report", 124) is BreakerState.CLOSED and breaker.allow("report", 124)


def test_success_resets_the_consecutive_failure_count():
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=60)
    breaker.record_failure("t", 0)
    breaker.record_success("t")
    assert not breaker.record_failure("t", 1)


def test_deferral_delay_within_sqs_limits():
    assert deferral_delay(0) == 1
    assert deferral_delay(12.2) == 13
    assert deferral_delay(5000) == 900


@pytest.mark.parametrize(
    ("fraction", "was_paused", "expected"),
    [
        (0.5, False, False),
        (0.8, False, True),
        (0.95, False, True),
        (0.7, True, True),
        (0.61, True, True),
        (0.6, True, False),
        (0.3, True, False),
    ],
)
def test_memory_guard_hysteresis(fraction, was_paused, expected):
    assert memory_paused(fraction, was_paused, high_water=0.8, low_water=0.6) is expected


def test_receive_count_never_exceeds_free_slots_memory_budget_or_ten():
    assert receive_count(16, None, paused=False, draining=False) == 10
    assert receive_count(3, None, paused=False, draining=False) == 3
    assert receive_count(8, 2, paused=False, draining=False) == 2
    assert receive_count(8, None, paused=True, draining=False) == 0
    assert receive_count(8, None, paused=False, draining=True) == 0
    assert receive_count(0, 5, paused=False, draining=False) == 0


def test_footprint_probe_then_projection_keeps_jobs_under_high_water():
    mib = 1024 * 1024
    estimator = FootprintEstimator(probe_seconds=5)
    estimator.observe(40 * mib, running=0, now=0)
    assert estimator.admissible(running=0, limit_bytes=600 * mib, high_water=0.8) == 1  # probe one job
    estimator.observe(90 * mib, running=1, now=0.1)
    assert estimator.admissible(running=1, limit_bytes=600 * mib, high_water=0.8) == 0  # still probing
    estimator.observe(140 * mib, running=1, now=0.5)
    estimator.job_completed()
    # (480 - 40) MiB / 100 MiB per job = 4 jobs in total fit under the high-water mark
    assert estimator.admissible(running=0, limit_bytes=600 * mib, high_water=0.8) == 4
    assert estimator.admissible(running=3, limit_bytes=600 * mib, high_water=0.8) == 1
    assert estimator.admissible(running=5, limit_bytes=600 * mib, high_water=0.8) == 0


def test_footprint_of_jobs_that_allocate_nothing_imposes_no_cap():
    estimator = FootprintEstimator(probe_seconds=5)
    estimator.observe(100, running=0, now=0)
    estimator.observe(100, running=1, now=1)
    estimator.observe(100, running=1, now=6.5)  # probe window elapsed without a completion
    assert estimator.learned
    assert estimator.admissible(running=1, limit_bytes=1000, high_water=0.8) is None
