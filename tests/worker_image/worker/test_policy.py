"""Pure policy functions: backoff, failure decisions, heartbeats, breaker, memory guard, DLQ attributes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from worker.policy import (
    BreakerState,
    CircuitBreaker,
    DeadLetter,
    FootprintModel,
    Retry,
    attempt_number,
    backoff_seconds,
    decide_failure,
    deferral_delay,
    empty_receive_pause,
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


def test_every_half_open_trial_outcome_resolves_the_state():
    """Defect 1: a PermanentError from the trial used to leave the type half-open forever."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=10)
    breaker.record_failure("t", 0)
    assert breaker.blocked("t", 5) and breaker.allow("t", 10)
    assert breaker.blocked("t", 10)  # the trial is running
    breaker.record_permanent("t")  # the handler reached a verdict: not a sign of an outage
    assert breaker.state("t", 10) is BreakerState.CLOSED and not breaker.blocked("t", 10)
    # A permanent error while closed neither counts toward opening nor resets the count.
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10)
    breaker.record_failure("t", 0)
    breaker.record_permanent("t")
    assert breaker.record_failure("t", 1)


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


def test_receive_count_never_exceeds_free_slots_or_ten():
    assert receive_count(16, False, paused=False, draining=False) == 10
    assert receive_count(3, False, paused=False, draining=False) == 3
    assert receive_count(8, True, paused=False, draining=False) == 0  # a new type waits to run alone
    assert receive_count(8, False, paused=True, draining=False) == 0
    assert receive_count(8, False, paused=False, draining=True) == 0
    assert receive_count(0, False, paused=False, draining=False) == 0


def test_zero_wait_receive_pauses_instead_of_spinning():
    assert empty_receive_pause(0) == 1.0
    assert empty_receive_pause(20) == 0.0


MIB = 1024 * 1024


def test_a_type_first_runs_alone_then_admission_uses_per_type_footprints():
    model = FootprintModel()
    model.observe(40 * MIB, {})
    assert model.admits("heavy", [], 40 * MIB, 600 * MIB, 0.8)  # nothing running: always one
    assert not model.admits("light", ["heavy"], 60 * MIB, 600 * MIB, 0.8)  # the heavy probe runs alone
    model.observe(140 * MIB, {"h1": "heavy"})
    assert model.job_finished("h1") == (100 * MIB, 140 * MIB)
    model.observe(41 * MIB, {"l1": "light"})
    model.job_finished("l1")
    assert model.footprints == {"heavy": 100 * MIB, "light": 1 * MIB}
    # 40 idle + 4 x 100 = 440 MiB; a fifth heavy would project 540 > 480 (0.8 x 600), a light still fits.
    four = ["heavy"] * 4
    assert model.admits("heavy", ["heavy"] * 3, 200 * MIB, 600 * MIB, 0.8)
    assert not model.admits("heavy", four, 200 * MIB, 600 * MIB, 0.8)
    assert model.admits("light", four, 200 * MIB, 600 * MIB, 0.8)
    # Measured usage above what the footprints say wins (a job over its footprint, a leak).
    assert not model.admits("light", ["light"], 480 * MIB, 600 * MIB, 0.8)
    assert not model.admits("new-type", ["light"], 41 * MIB, 600 * MIB, 0.8)  # unseen types probe alone


def test_a_job_is_charged_only_what_the_others_footprints_do_not_explain():
    """Defect 3: a light job running next to growing heavy ones must not learn the heavy footprint."""
    model = FootprintModel()
    model.observe(40 * MIB, {})
    model.observe(140 * MIB, {"h1": "heavy"})
    model.job_finished("h1")
    model.observe(40 * MIB, {})
    model.observe(141 * MIB, {"h2": "heavy", "l1": "light"})  # h2 grew to its 100 MiB while l1 ran
    model.observe(241 * MIB, {"h2": "heavy", "h3": "heavy", "l1": "light"})
    share, worker_peak = model.job_finished("l1")
    assert share == 1 * MIB and worker_peak == 241 * MIB
    assert model.footprints["light"] == 1 * MIB


def test_one_job_bigger_than_the_headroom_never_stops_admission():
    """Defect 2: a footprint above the high-water headroom admitted nothing, even with nothing running."""
    model = FootprintModel()
    model.observe(100 * MIB, {})
    model.observe(590 * MIB, {"big": "big"})
    model.job_finished("big")
    model.observe(100 * MIB, {})
    assert model.admits("big", [], 100 * MIB, 600 * MIB, 0.8)
    assert not model.admits("big", ["big"], 590 * MIB, 600 * MIB, 0.8)
