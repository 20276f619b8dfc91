"""Decisions the runtime makes, as pure functions and small state machines fed explicit clocks and readings.

Nothing here talks to AWS or reads the clock, so every rule is unit-tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43200


# --- attempts and backoff -------------------------------------------------------------------------------


def attempt_number(approximate_receive_count: int, prior_attempts: int) -> int:
    """Real attempts so far, this one included.

    SQS counts receives of *this* message; a breaker deferral re-sends the job as a new message whose
    count restarts at 1, carrying the attempts already spent in its deferral record
    (``jobfleet_contract.envelope.deferred_body``).
    """
    return max(1, approximate_receive_count) + max(0, prior_attempts)


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> int:
    """Exponential backoff with "equal jitter": half the step is guaranteed, half is random.

    ``jitter`` is a number in [0, 1). The guaranteed half keeps retries from hammering a failing
    dependency; the random half spreads a burst of failures out. Result is whole seconds for SQS.
    """
    step = min(cap, base * 2 ** max(0, attempt - 1), SQS_MAX_VISIBILITY_SECONDS)
    return math.ceil(step / 2 + jitter * step / 2)


@dataclass(frozen=True)
class Retry:
    delay_seconds: int


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # "permanent" or "attempts-exhausted"


def decide_failure(
    permanent: bool, attempt: int, max_attempts: int, base: float, cap: float, jitter: float
) -> Retry | DeadLetter:
    """What to do with a failed job: dead-letter now (permanent / last attempt) or retry after a backoff."""
    if permanent:
        return DeadLetter("permanent")
    if attempt >= max_attempts:
        return DeadLetter("attempts-exhausted")
    return Retry(backoff_seconds(attempt, base, cap, jitter))


# --- heartbeats -----------------------------------------------------------------------------------------


def heartbeat_extension(
    now: float, visible_at: float, job_deadline: float, visibility_timeout: int, received_at: float
) -> int | None:
    """Seconds to extend a running message's visibility by, or None when no heartbeat is due.

    Due once less than half the visibility timeout of cover remains. The extension never reaches past
    the job type's maximum duration (the timeout path takes over there) nor SQS's 12 h ceiling.
    """
    if visible_at - now > visibility_timeout / 2:
        return None
    remaining = min(job_deadline - now, received_at + SQS_MAX_VISIBILITY_SECONDS - now)
    if remaining <= 0:
        return None
    return max(1, min(visibility_timeout, math.ceil(remaining)))


# --- circuit breaker --------------------------------------------------------------------------------------


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class _TypeBreaker:
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    trial_running: bool = False


class CircuitBreaker:
    """Per job type: CLOSED -> (N consecutive failures) OPEN -> (cooldown) HALF_OPEN -> one trial job ->
    CLOSED on success, OPEN again on a transient failure. Callers pass ``now``; the runtime holds the lock.

    A ``PermanentError`` says "this job's input can never succeed", not "the dependency is down": it is
    neither counted toward opening nor does it reset the count while closed, and as the half-open trial
    it closes the breaker (the handler ran and reached a verdict). Every trial outcome resolves
    HALF_OPEN, so a type can never stay there."""

    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        per_type: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._per_type = dict(per_type or {})  # job type -> (threshold, cooldown), from JOB_BREAKERS
        self._types: dict[str, _TypeBreaker] = {}

    def _cooldown(self, job_type: str) -> float:
        return self._per_type.get(job_type, (self.failure_threshold, self.cooldown_seconds))[1]

    def _threshold(self, job_type: str) -> int:
        return self._per_type.get(job_type, (self.failure_threshold, self.cooldown_seconds))[0]

    def state(self, job_type: str, now: float) -> BreakerState:
        breaker = self._types.get(job_type)
        if breaker is None:
            return BreakerState.CLOSED
        if breaker.state is BreakerState.OPEN and now - breaker.opened_at >= self._cooldown(job_type):
            breaker.state = BreakerState.HALF_OPEN
        return breaker.state

    def allow(self, job_type: str, now: float) -> bool:
        """May a job of this type run now? In HALF_OPEN exactly one trial runs at a time."""
        state = self.state(job_type, now)
        if state is BreakerState.CLOSED:
            return True
        breaker = self._types[job_type]
        if state is BreakerState.HALF_OPEN and not breaker.trial_running:
            breaker.trial_running = True
            return True
        return False

    def retry_after(self, job_type: str, now: float) -> float:
        """Seconds until a deferred job of this type should come back: the rest of the cooldown while open;
        a quarter cooldown while a half-open trial runs (not 0, which would spin deferrals)."""
        state = self.state(job_type, now)
        if state is BreakerState.CLOSED:
            return 0.0
        if state is BreakerState.HALF_OPEN:
            return self._cooldown(job_type) / 4
        return max(0.0, self._types[job_type].opened_at + self._cooldown(job_type) - now)

    def blocked(self, job_type: str, now: float) -> bool:
        """Would ``allow`` refuse a job of this type now? (No trial is claimed.)"""
        state = self.state(job_type, now)
        return state is BreakerState.OPEN or (
            state is BreakerState.HALF_OPEN and self._types[job_type].trial_running
        )

    def record_success(self, job_type: str) -> None:
        self._types.pop(job_type, None)

    def record_permanent(self, job_type: str) -> None:
        """A job of this type raised PermanentError: resolves a half-open trial (closed), else no effect."""
        breaker = self._types.get(job_type)
        if breaker is not None and breaker.state is BreakerState.HALF_OPEN:
            self._types.pop(job_type)

    def record_failure(self, job_type: str, now: float) -> bool:
        """Count a transient failure; True when this failure opened the breaker."""
        breaker = self._types.setdefault(job_type, _TypeBreaker())
        breaker.consecutive_failures += 1
        if breaker.state is BreakerState.HALF_OPEN or (
            breaker.state is BreakerState.CLOSED and breaker.consecutive_failures >= self._threshold(job_type)
        ):
            breaker.state, breaker.opened_at, breaker.trial_running = BreakerState.OPEN, now, False
            return True
        return False


def deferral_delay(retry_after: float) -> int:
    """SQS DelaySeconds for a deferred message: the breaker's remaining cooldown, within SQS's [1, 900]."""
    return int(min(SQS_MAX_DELAY_SECONDS, max(1, math.ceil(retry_after))))


# --- memory guard -----------------------------------------------------------------------------------------


def memory_paused(used_fraction: float, was_paused: bool, high_water: float, low_water: float) -> bool:
    """Hysteresis: pause receiving at/above the high-water mark, resume only at/below the low-water mark."""
    if was_paused:
        return used_fraction > low_water
    return used_fraction >= high_water


class FootprintModel:
    """Learns, per job type, how much memory one running job of that type adds, from readings of the
    whole worker (process tree or cgroup), so admission can stop *before* the high-water mark.

    The idle level is the lowest usage seen with nothing running. A running job's share of a reading is
    what is left after the idle level and the learned footprints of the *other* running jobs
    (``used - idle - sum(others)``): never more than the job really holds while the others' footprints
    are right, so raising a type's footprint to a share seen is always justified. A type's first job is a
    probe: it runs alone (nothing else is admitted while a type without a footprint runs), so its share
    is exact. Footprints only grow within a process; admission with nothing running always lets one job
    through, so a type bigger than the headroom runs alone instead of never.
    """

    def __init__(self) -> None:
        self.idle_bytes: int | None = None
        self.footprints: dict[str, float] = {}
        self._peaks: dict[object, tuple[str, float, int]] = {}  # job key -> (type, share, worker peak)

    def observe(self, used_bytes: int, running: dict[object, str]) -> None:
        """One reading; ``running`` maps each running job's key to its type."""
        if not running:
            self.idle_bytes = used_bytes if self.idle_bytes is None else min(self.idle_bytes, used_bytes)
            return
        idle = self.idle_bytes if self.idle_bytes is not None else used_bytes
        total_known = sum(self.footprints.get(job_type, 0.0) for job_type in running.values())
        for key, job_type in running.items():
            others = total_known - self.footprints.get(job_type, 0.0)
            share = max(0.0, used_bytes - idle - others)
            _, peak_share, peak_used = self._peaks.get(key, (job_type, 0.0, 0))
            self._peaks[key] = (job_type, max(peak_share, share), max(peak_used, used_bytes))

    def job_finished(self, key: object) -> tuple[float, int]:
        """Learn from a finished job; returns (its peak share, the worker's peak while it ran) in bytes."""
        job_type, share, worker_peak = self._peaks.pop(key, ("", 0.0, 0))
        if job_type:
            self.footprints[job_type] = max(self.footprints.get(job_type, 0.0), share)
        return share, worker_peak

    def knows(self, job_type: str) -> bool:
        return job_type in self.footprints

    def discard(self, key: object) -> None:
        """Forget a job that ended without running to an outcome worth learning from (e.g. skipped)."""
        self._peaks.pop(key, None)

    def admits(
        self, job_type: str, running_types: list[str], used_bytes: int, limit_bytes: int, high_water: float
    ) -> bool:
        """May one more job of ``job_type`` start next to ``running_types``?

        Projected usage is the larger of what is measured and what the running jobs' footprints say they
        will reach, plus the newcomer's footprint; it must stay under the high-water mark.
        """
        if not running_types:
            return True
        if job_type not in self.footprints or any(t not in self.footprints for t in running_types):
            return False  # a probe runs alone
        idle = self.idle_bytes if self.idle_bytes is not None else used_bytes
        committed = idle + sum(self.footprints[t] for t in running_types)
        return max(used_bytes, committed) + self.footprints[job_type] <= high_water * limit_bytes


def receive_count(free_slots: int, probe_waiting: bool, paused: bool, draining: bool) -> int:
    """Messages to ask SQS for: never more than free slots (messages waiting for memory hold theirs, so
    nothing is prefetched beyond capacity) or SQS's 10; none while a job of a type never seen waits to
    run alone (more arrivals would only keep it waiting)."""
    if paused or draining or probe_waiting:
        return 0
    return max(0, min(10, free_slots))


def empty_receive_pause(wait_seconds: int) -> float:
    """Seconds to pause after a receive that returned nothing: long polling already waited; a zero
    wait (short polling) must not turn an empty queue into a busy loop."""
    return 0.0 if wait_seconds >= 1 else 1.0
