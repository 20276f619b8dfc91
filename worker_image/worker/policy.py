"""Decisions the runtime makes, as pure functions and small state machines fed explicit clocks and readings.

Nothing here talks to AWS or reads the clock, so every rule is unit-tested directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43200


# --- attempts and backoff -------------------------------------------------------------------------------


def attempt_number(approximate_receive_count: int, prior_attempts: int) -> int:
    """Real attempts so far, this one included.

    SQS counts receives of *this* message; a breaker deferral re-sends the job as a new message whose
    count restarts at 1, carrying the attempts already spent in ``jobfleet.priorAttempts``.
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
    CLOSED on success, OPEN again on failure. Callers pass ``now``; the runtime holds the lock."""

    def __init__(self, failure_threshold: int, cooldown_seconds: float) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._types: dict[str, _TypeBreaker] = {}

    def state(self, job_type: str, now: float) -> BreakerState:
        breaker = self._types.get(job_type)
        if breaker is None:
            return BreakerState.CLOSED
        if breaker.state is BreakerState.OPEN and now - breaker.opened_at >= self.cooldown_seconds:
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
            return self.cooldown_seconds / 4
        return max(0.0, self._types[job_type].opened_at + self.cooldown_seconds - now)

    def record_success(self, job_type: str) -> None:
        self._types.pop(job_type, None)

    def record_failure(self, job_type: str, now: float) -> bool:
        """Count a transient failure; True when this failure opened the breaker."""
        breaker = self._types.setdefault(job_type, _TypeBreaker())
        breaker.consecutive_failures += 1
        if breaker.state is BreakerState.HALF_OPEN or (
            breaker.state is BreakerState.CLOSED and breaker.consecutive_failures >= self.failure_threshold
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


class FootprintEstimator:
    """Learns how much memory one running job adds, so admission can stop *before* the high-water mark.

    A guard that only looks at current usage admits a whole batch while those jobs have not allocated
    yet. Samples are (used bytes, jobs running). The idle level is the lowest usage seen with nothing
    running; the footprint is the largest (used - idle) / running seen, learned from a probe: until a
    first job has completed or run ``probe_seconds``, only one job is admitted.
    """

    def __init__(self, probe_seconds: float = 5.0) -> None:
        self.probe_seconds = probe_seconds
        self.idle_bytes: int | None = None
        self.per_job_bytes: float = 0.0
        self._probe_started: float | None = None
        self.learned = False

    def observe(self, used_bytes: int, running: int, now: float) -> None:
        if running == 0:
            self.idle_bytes = used_bytes if self.idle_bytes is None else min(self.idle_bytes, used_bytes)
            return
        if self._probe_started is None:
            self._probe_started = now
        if self.idle_bytes is not None:
            self.per_job_bytes = max(self.per_job_bytes, (used_bytes - self.idle_bytes) / running)
        if now - self._probe_started >= self.probe_seconds:
            self.learned = True

    def job_completed(self) -> None:
        self.learned = True

    def admissible(self, running: int, limit_bytes: int, high_water: float) -> int | None:
        """How many more jobs fit under the high-water mark; None means "no memory-based cap"."""
        if not self.learned:
            return 0 if running else 1
        if self.per_job_bytes <= 0 or self.idle_bytes is None:
            return None
        fits = int((high_water * limit_bytes - self.idle_bytes) // self.per_job_bytes)
        return max(0, fits - running)


def receive_count(free_slots: int, memory_budget: int | None, paused: bool, draining: bool) -> int:
    """Messages to ask SQS for: never more than free slots (no prefetch), SQS's 10, or what memory allows."""
    if paused or draining:
        return 0
    budget = free_slots if memory_budget is None else min(free_slots, memory_budget)
    return max(0, min(10, budget))
