"""Discrete-event replay of a trace against one environment's tiers, seeded and deterministic.

Service tiers (Fargate workers), as synthesized (see model.py for the numbers):
- Messages wait in a FIFO queue; a running task takes up to `concurrency` of them at once.
- Every minute closes a CloudWatch data point: visible messages (average and maximum), in-flight
  messages (maximum), running tasks (average) and desired tasks (maximum). It reaches the alarms
  `metric_lag_seconds` later.
  After `IDLE_QUEUE_SECONDS` without messages SQS publishes nothing for
  `idle_queue_metric_delay_seconds` after the next send (missing data: no alarm acts on it).
- Target tracking on `visible / max(running, desired, 1)` (running average, desired maximum: tasks
  that are starting count at once, so a burst is not answered again while they start), scale-out
  only: 3 data points above the target invoke the policy once a minute,
  desired = ceil(desired x metric / target) (not held back by its cooldown: AWS counts the
  capacity it just added). Bounds min..max tasks.
- Scale-in step policies, each alarm invoking its policy once a minute while all of the last
  `SCALE_IN_MINUTES` data points breach, at most once per `SCALE_IN_COOLDOWN_SECONDS` (shared):
  "scale-in" when (visible max + in flight max) / max(running, desired) / target < SCALE_IN_BELOW_RATIO
  with desired max > max(min_tasks, 1): removes 25 % (50 % at or below a quarter of the target) of the
  desired count, truncated towards zero, at least 1; "scale-to-zero" (min 0 tiers) when nothing
  was visible or in flight and desired max was exactly 1: removes one task. A data point without
  SQS data breaches neither.
- Wake-up alarm (min 0 only): a data point with messages visible while desired was 0 sets the
  desired count to exactly 1 (step cooldown 60 s). With `api.wake_from_zero` the API does the same
  `API_WAKE_SECONDS` after a submission to a tier whose desired count is 0, at most once per
  `wake_interval_seconds`, and re-checks every interval until a task runs (at most
  `API_WAKE_GUARD_SECONDS`; worker/wake.py's guard, which the scale-in alarms no longer need).
- A new task runs after `task_start_seconds` (x U(0.75, 1.25)) and is billed from its start.
  Scale-in removes starting tasks first, then idle ones; a busy task (scale-in protection) keeps
  working, and receiving while it holds a message, and stops the moment it holds none.

Batch tiers: the pipe submits each message `PIPE_SUBMIT_SECONDS` after it arrives; jobs run FIFO on
Spot slots (`batch.max_vcpus / vCPUs`), then on on-demand slots when Spot is full. A job starts
after `batch_start_seconds` on a new instance, `BATCH_WARM_START_SECONDS` on one freed within
`BATCH_WARM_SECONDS`. A Spot job is reclaimed at `spot_interruptions_per_hour`; it is retried from
the start up to the job definition's attempts (EnvironmentConfig.batch_attempts), then fails.

Wait = time from submission to the start of the job (its first attempt).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
import random

from jobfleet_config.config import EnvironmentConfig

from .model import (
    API_WAKE_GUARD_SECONDS,
    API_WAKE_SECONDS,
    BATCH_WARM_SECONDS,
    BATCH_WARM_START_SECONDS,
    HIGH_ALARM_DATAPOINTS,
    IDLE_QUEUE_SECONDS,
    METRIC_PERIOD_SECONDS,
    PIPE_SUBMIT_SECONDS,
    SCALE_IN_BELOW_RATIO,
    SCALE_IN_COOLDOWN_SECONDS,
    SCALE_IN_MINUTES,
    SCALE_IN_STEPS,
    SCALE_TO_ZERO_ADJUSTMENT,
    WAKE_STEP_COOLDOWN_SECONDS,
    BatchPolicy,
    ServicePolicy,
)
from .trace import Trace, TraceError

# How long after the trace's last minute the model keeps running to finish the queued work.
DRAIN_LIMIT_SECONDS = 2 * 86400
PERCENTILES = (50, 95, 99)


@dataclasses.dataclass
class Series:
    """Per-minute samples for the chart."""

    visible: list[float] = dataclasses.field(default_factory=list)
    desired: list[int] = dataclasses.field(default_factory=list)
    running: list[float] = dataclasses.field(default_factory=list)
    max_wait: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TierResult:
    name: str
    runtime: str
    objective_seconds: float
    waits: list[float]
    seconds_above_objective: float
    peak_tasks: int
    task_hours: float
    spot_task_hours: float
    vcpu: float
    memory_gb: float
    duration_hours: float
    series: Series
    interruptions: int = 0
    failed: int = 0

    @property
    def jobs(self) -> int:
        return len(self.waits)

    def percentile(self, p: float) -> float:
        return percentile(sorted(self.waits), p)

    @property
    def meets_objective(self) -> bool:
        """The check `--check` applies: 99 % of jobs start within the tier's latency objective."""
        return self.jobs == 0 or self.percentile(99) <= self.objective_seconds

    @property
    def on_demand_task_hours(self) -> float:
        return self.task_hours - self.spot_task_hours


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ordered list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def seconds_above(arrivals: list[float], starts: list[float], objective: float) -> float:
    """Time during which some waiting message was older than `objective` (union of intervals)."""
    intervals = sorted((a + objective, s) for a, s in zip(arrivals, starts, strict=True)
                       if s > a + objective)
    total, end = 0.0, -math.inf
    for begin, finish in intervals:
        if finish <= end:
            continue
        total += finish - max(begin, end)
        end = finish
    return total


# --- jobs from a trace -----------------------------------------------------------------------


def durations(rng: random.Random, mean: float, cv: float, cap: float, n: int) -> list[float]:
    """Lognormal job durations with the given mean and coefficient of variation, capped."""
    if cv == 0:
        return [min(mean, cap)] * n
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    return [min(rng.lognormvariate(mu, sigma), cap) for _ in range(n)]


def jobs_by_tier(config: EnvironmentConfig, trace: Trace, seed: int
                 ) -> dict[str, tuple[list[float], list[float]]]:
    """(arrival times, durations) per tier: each minute's jobs spread uniformly over it."""
    unknown = trace.job_types - set(config.job_types)
    if unknown:
        raise TraceError(f"{trace.name}: job types {', '.join(sorted(unknown))} are not in "
                         f"{config.name}'s job_types ({', '.join(sorted(config.job_types))})")
    rng = random.Random(seed)
    jobs: dict[str, list[tuple[float, float]]] = {tier.name: [] for tier in config.tiers}
    for row in trace.rows:
        tier = config.tier(config.job_types[row.job_type])
        mean = row.mean_seconds or tier.expected_job_seconds
        times = [(row.minute + rng.random()) * 60 for _ in range(row.count)]
        for at, length in zip(times, durations(rng, mean, config.capacity.job_duration_cv,
                                                tier.max_job_seconds, row.count), strict=True):
            jobs[tier.name].append((at, length))
    result = {}
    for name, pairs in jobs.items():
        pairs.sort()
        result[name] = ([a for a, _ in pairs], [d for _, d in pairs])
    return result


def simulate(config: EnvironmentConfig, trace: Trace, *, seed: int = 1, api_wake: bool = True
             ) -> list[TierResult]:
    """Every tier of `config` replaying `trace`."""
    jobs = jobs_by_tier(config, trace, seed)
    horizon = trace.minutes * 60
    results = []
    for index, tier in enumerate(config.tiers):
        arrivals, lengths = jobs[tier.name]
        rng = random.Random(seed * 1000 + index)
        if tier.is_service:
            policy = ServicePolicy.from_config(config, tier, api_wake=api_wake)
            results.append(simulate_service(policy, arrivals, lengths, horizon=horizon, rng=rng))
        else:
            results.append(simulate_batch(BatchPolicy.from_config(config, tier), arrivals, lengths,
                                          horizon=horizon, rng=rng))
    return results


# --- service tiers ---------------------------------------------------------------------------

_TASK_READY, _JOB_DONE, _MINUTE, _EVALUATE, _API_WAKE = range(5)


@dataclasses.dataclass
class _Task:
    ident: int
    started: float
    running: bool = False
    busy: int = 0
    stopping: bool = False


@dataclasses.dataclass
class _Datapoint:
    visible_avg: float
    visible_max: float
    in_flight_max: int
    running_avg: float
    desired_max: int
    missing: bool  # SQS published nothing (queue resuming after a long idle spell)

    @property
    def tasks(self) -> float:
        """The policies' task count: MAX(running, desired), at least 1."""
        return max(self.running_avg, self.desired_max, 1.0)


class _ServiceModel:
    def __init__(self, policy: ServicePolicy, arrivals: list[float], lengths: list[float],
                 rng: random.Random, initial_tasks: int | None) -> None:
        self.p, self.arrivals, self.lengths, self.rng = policy, arrivals, lengths, rng
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.now = 0.0
        self.queue: collections.deque[int] = collections.deque()
        self.tasks: dict[int, _Task] = {}
        self.next_task = 0
        self.desired = 0
        self.starts = [math.nan] * len(arrivals)
        self.done = 0
        # metric accumulation over the current minute
        self.last_t = 0.0
        self.visible_area = self.running_area = 0.0
        self.visible_max = 0
        self.in_flight_max = 0
        self.desired_max = 0
        self.task_seconds = self.spot_task_seconds = 0.0
        self.peak_tasks = 0
        self.datapoints: list[_Datapoint] = []
        self.last_activity = 0.0
        self.metrics_resume_at = -math.inf
        self.last_scale_in = -math.inf
        self.last_wake_step = -math.inf
        self.last_api_wake = -math.inf
        self.series = Series()
        self.minute_max_wait = 0.0
        start = policy.min_tasks if initial_tasks is None else initial_tasks
        self.set_desired(start, ready_now=True)

    # events
    def push(self, at: float, kind: int, payload: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, payload))

    def advance(self, t: float) -> None:
        dt = t - self.last_t
        if dt > 0:
            running = sum(1 for task in self.tasks.values() if task.running)
            self.visible_area += len(self.queue) * dt
            self.running_area += running * dt
            count = len(self.tasks)
            self.task_seconds += count * dt
            self.spot_task_seconds += self.p.spot_share(count) * dt
            self.last_t = t
        self.now = t

    # capacity
    def set_desired(self, desired: int, *, ready_now: bool = False) -> None:
        desired = max(self.p.min_tasks, min(self.p.max_tasks, desired))
        self.desired = desired
        self.desired_max = max(self.desired_max, desired)
        active = [t for t in self.tasks.values() if not t.stopping]
        for _ in range(desired - len(active)):
            task = _Task(self.next_task, self.now)
            self.next_task += 1
            self.tasks[task.ident] = task
            delay = 0.0 if ready_now else self.p.task_start_seconds * self.rng.uniform(0.75, 1.25)
            self.push(self.now + delay, _TASK_READY, task.ident)
        excess = len(active) - desired
        if excess > 0:
            # Starting tasks first (newest first), then idle ones, then busy ones (protected).
            order = sorted(active, key=lambda t: (t.running, t.busy > 0, -t.started))
            for task in order[:excess]:
                if task.busy:
                    task.stopping = True
                else:
                    del self.tasks[task.ident]
        self.peak_tasks = max(self.peak_tasks, len(self.tasks))

    def dispatch(self) -> None:
        if not self.queue:
            return
        for task in self.tasks.values():
            # A task picked for scale-in keeps its protection, and keeps receiving, while it holds
            # a message; once it holds none it releases protection and ECS stops it.
            if not task.running or (task.stopping and task.busy == 0):
                continue
            while task.busy < self.p.concurrency and self.queue:
                job = self.queue.popleft()
                self.starts[job] = self.now
                self.minute_max_wait = max(self.minute_max_wait, self.now - self.arrivals[job])
                task.busy += 1
                self.push(self.now + self.lengths[job], _JOB_DONE, task.ident)
            self.in_flight_max = max(self.in_flight_max, self.in_flight())
            if not self.queue:
                return

    def in_flight(self) -> int:
        return sum(task.busy for task in self.tasks.values())

    # scaling
    def close_minute(self, minute: int) -> None:
        missing = (minute + 1) * METRIC_PERIOD_SECONDS <= self.metrics_resume_at
        self.datapoints.append(_Datapoint(
            visible_avg=self.visible_area / METRIC_PERIOD_SECONDS,
            visible_max=self.visible_max,
            in_flight_max=self.in_flight_max,
            running_avg=self.running_area / METRIC_PERIOD_SECONDS,
            desired_max=self.desired_max, missing=missing))
        self.series.visible.append(self.visible_area / METRIC_PERIOD_SECONDS)
        self.series.running.append(self.running_area / METRIC_PERIOD_SECONDS)
        self.series.desired.append(self.desired_max)
        self.series.max_wait.append(self.minute_max_wait)
        self.visible_area = self.running_area = 0.0
        self.visible_max = len(self.queue)
        self.in_flight_max = self.in_flight()
        self.desired_max = self.desired
        self.minute_max_wait = 0.0

    def evaluate(self, minute: int) -> None:
        p = self.p
        points = self.datapoints[max(0, minute + 1 - max(HIGH_ALARM_DATAPOINTS, SCALE_IN_MINUTES)):
                                 minute + 1]
        metrics = [None if d.missing else d.visible_avg / d.tasks for d in points]
        latest = metrics[-1]
        high = metrics[-HIGH_ALARM_DATAPOINTS:]
        if len(high) == HIGH_ALARM_DATAPOINTS and all(m is not None and m > p.target for m in high):
            wanted = math.ceil(self.desired * latest / p.target - 1e-9)
            if wanted > self.desired:
                self.set_desired(wanted)
        window = points[-SCALE_IN_MINUTES:]
        if len(window) == SCALE_IN_MINUTES and self.now - self.last_scale_in >= SCALE_IN_COOLDOWN_SECONDS:
            ratios = [self.work_ratio(d) for d in window]
            if all(r < SCALE_IN_BELOW_RATIO for r in ratios):
                self.scale_in_by(percent_adjustment(self.desired, scale_in_percent(max(ratios))))
            elif p.scale_to_zero and all(not d.missing and d.visible_max == 0 and d.in_flight_max == 0
                                         and d.desired_max == 1 for d in window):
                self.scale_in_by(SCALE_TO_ZERO_ADJUSTMENT)
        if p.wake_alarm:
            point = points[-1]
            visible = 0 if point.missing else point.visible_max
            if (visible > 0 and point.desired_max < 1
                    and self.now - self.last_wake_step >= WAKE_STEP_COOLDOWN_SECONDS):
                self.last_wake_step = self.now
                self.set_desired(1)  # ExactCapacity 1

    def work_ratio(self, point: _Datapoint) -> float:
        """The scale-in alarm's value: work per task / target; 1 (never breaching) where the gate
        (desired above the floor, SQS data present) is closed."""
        if point.missing or point.desired_max <= self.p.scale_in_floor:
            return 1.0
        work = point.visible_max + point.in_flight_max
        return work / point.tasks / self.p.target

    def scale_in_by(self, adjustment: int) -> None:
        wanted = max(self.p.min_tasks, self.desired + adjustment)
        if wanted < self.desired:
            self.last_scale_in = self.now
            self.set_desired(wanted)

    def api_wake_check(self, started: int) -> None:
        """worker/wake.py: raise 0 -> 1, and re-check every interval until a task runs (a
        target-tracking scale-in on data from before the job can take the count back to 0)."""
        if self.desired == 0:
            self.set_desired(1)
        running = any(task.running for task in self.tasks.values())
        if not running and self.now + self.p.api_wake_interval_seconds - started <= API_WAKE_GUARD_SECONDS:
            self.push(self.now + self.p.api_wake_interval_seconds, _API_WAKE, started)

    def arrive(self, job: int) -> None:
        if self.now - self.last_activity >= IDLE_QUEUE_SECONDS and not self.queue:
            self.metrics_resume_at = self.now + self.p.idle_queue_metric_delay_seconds
        self.last_activity = self.now
        self.queue.append(job)
        self.visible_max = max(self.visible_max, len(self.queue))
        if (self.p.api_wake and self.desired == 0
                and self.now - self.last_api_wake >= self.p.api_wake_interval_seconds):
            self.last_api_wake = self.now
            self.push(self.now + API_WAKE_SECONDS, _API_WAKE, int(self.now))
        self.dispatch()

    def run(self, horizon: float) -> None:
        n = len(self.arrivals)
        self.push(METRIC_PERIOD_SECONDS, _MINUTE, 0)
        next_job = 0
        limit = horizon + DRAIN_LIMIT_SECONDS
        while True:
            next_event = self.events[0][0] if self.events else math.inf
            if next_job < n and self.arrivals[next_job] <= next_event:
                self.advance(self.arrivals[next_job])
                self.arrive(next_job)
                next_job += 1
                continue
            at, _, kind, payload = heapq.heappop(self.events)
            if kind == _MINUTE and at >= horizon and next_job == n and self.done == n:
                self.advance(at)
                self.close_minute(payload)
                return
            if at > limit:
                raise RuntimeError(f"{self.p.name}: work still queued {DRAIN_LIMIT_SECONDS} s "
                                   "after the trace ended (max_tasks too low for the load?)")
            self.advance(at)
            if kind == _TASK_READY:
                task = self.tasks.get(payload)
                if task is not None:
                    task.running = True
                    self.dispatch()
            elif kind == _JOB_DONE:
                self.done += 1
                task = self.tasks[payload]
                task.busy -= 1
                if task.stopping and task.busy == 0:
                    del self.tasks[payload]
                else:
                    self.dispatch()
            elif kind == _MINUTE:
                self.close_minute(payload)
                self.push(at + METRIC_PERIOD_SECONDS, _MINUTE, payload + 1)
                self.push(at + self.p.metric_lag_seconds, _EVALUATE, payload)
            elif kind == _EVALUATE:
                self.evaluate(payload)
            elif kind == _API_WAKE:
                self.api_wake_check(started=payload)


def scale_in_percent(value: float) -> int:
    """The step of the scale-in policy that the alarm value falls in. Bounds are relative to the
    threshold; below it a step's lower bound is exclusive and its upper bound inclusive
    (Application Auto Scaling's StepAdjustment)."""
    relative = value - SCALE_IN_BELOW_RATIO
    for lower, upper, percent in SCALE_IN_STEPS:
        if (lower is None or relative > lower) and (upper is None or relative <= upper):
            return percent
    raise ValueError(f"{value} is not below the scale-in threshold {SCALE_IN_BELOW_RATIO}")


def percent_adjustment(desired: int, percent: int) -> int:
    """Application Auto Scaling's PercentChangeInCapacity: the change is truncated towards zero,
    and a change between -1 and 0 becomes -1 (as does MinAdjustmentMagnitude 1)."""
    change = math.trunc(desired * percent / 100)
    return min(change, -1) if percent < 0 else max(change, 1)


def simulate_service(policy: ServicePolicy, arrivals: list[float], lengths: list[float], *,
                     horizon: float, rng: random.Random, initial_tasks: int | None = None
                     ) -> TierResult:
    model = _ServiceModel(policy, arrivals, lengths, rng, initial_tasks)
    model.run(horizon)
    waits = [s - a for s, a in zip(model.starts, arrivals, strict=True)]
    return TierResult(
        name=policy.name, runtime="service", objective_seconds=policy.objective_seconds,
        waits=waits,
        seconds_above_objective=seconds_above(arrivals, model.starts, policy.objective_seconds),
        peak_tasks=model.peak_tasks, task_hours=model.task_seconds / 3600,
        spot_task_hours=model.spot_task_seconds / 3600, vcpu=policy.vcpu,
        memory_gb=policy.memory_gb, duration_hours=model.now / 3600, series=model.series)


# --- batch tiers -----------------------------------------------------------------------------

_SUBMITTED, _STARTED, _FINISHED, _RECLAIMED = range(4)


class _Pool:
    def __init__(self, slots: int, spot: bool) -> None:
        self.slots, self.spot = slots, spot
        self.used = 0
        self.freed: list[float] = []  # instances freed recently (warm), as times

    def warm(self, now: float) -> bool:
        self.freed = [t for t in self.freed if now - t < BATCH_WARM_SECONDS]
        if self.freed:
            self.freed.pop()
            return True
        return False


def simulate_batch(policy: BatchPolicy, arrivals: list[float], lengths: list[float], *,
                   horizon: float, rng: random.Random) -> TierResult:
    n = len(arrivals)
    events: list[tuple[float, int, int, int]] = []
    seq = 0

    def push(at: float, kind: int, job: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, job))

    for job, at in enumerate(arrivals):
        push(at + PIPE_SUBMIT_SECONDS, _SUBMITTED, job)
    pools = [_Pool(policy.spot_slots, True), _Pool(policy.on_demand_slots, False)]
    placed: dict[int, _Pool] = {}
    attempts = [0] * n
    starts = [math.nan] * n
    runnable: collections.deque[int] = collections.deque()
    now = last_t = 0.0
    slot_seconds = spot_seconds = 0.0
    peak = interruptions = failed = finished = 0
    series = Series()
    minute_end, minute_wait = 60.0, 0.0
    minute_area = {"runnable": 0.0, "running": 0.0}

    def account(t: float) -> None:
        nonlocal last_t, slot_seconds, spot_seconds
        dt = t - last_t
        if dt > 0:
            slot_seconds += (pools[0].used + pools[1].used) * dt
            spot_seconds += pools[0].used * dt
            minute_area["runnable"] += len(runnable) * dt
            minute_area["running"] += (pools[0].used + pools[1].used) * dt
            last_t = t

    def place() -> None:
        nonlocal peak
        while runnable:
            pool = next((p for p in pools if p.used < p.slots), None)
            if pool is None:
                return
            job = runnable.popleft()
            pool.used += 1
            placed[job] = pool
            peak = max(peak, pools[0].used + pools[1].used)
            delay = BATCH_WARM_START_SECONDS if pool.warm(now) else policy.start_seconds
            push(now + delay, _STARTED, job)

    def close_minutes(until: float) -> None:
        nonlocal minute_end, minute_area, minute_wait
        while until >= minute_end:
            account(minute_end)
            series.visible.append(minute_area["runnable"] / 60)
            series.running.append(minute_area["running"] / 60)
            series.desired.append(pools[0].used + pools[1].used)
            series.max_wait.append(minute_wait)
            minute_area = {"runnable": 0.0, "running": 0.0}
            minute_wait = 0.0
            minute_end += 60

    while events:
        at = events[0][0]
        close_minutes(at)
        _, _, kind, job = heapq.heappop(events)
        account(at)
        now = at
        pool = placed.get(job)
        if kind == _SUBMITTED:
            runnable.append(job)
        elif kind == _STARTED:
            attempts[job] += 1
            if math.isnan(starts[job]):
                starts[job] = now
                minute_wait = max(minute_wait, now - arrivals[job])
            reclaim = (rng.expovariate(policy.interruptions_per_hour / 3600)
                       if pool.spot and policy.interruptions_per_hour > 0 else math.inf)
            if reclaim < lengths[job]:
                push(now + reclaim, _RECLAIMED, job)
            else:
                push(now + lengths[job], _FINISHED, job)
        elif kind == _FINISHED:
            pool.used -= 1
            pool.freed.append(now)
            finished += 1
        elif kind == _RECLAIMED:
            pool.used -= 1  # the instance is gone: nothing warm
            interruptions += 1
            if attempts[job] < policy.retry_attempts:
                runnable.appendleft(job)
            else:
                failed += 1
        place()
    end = max(now, horizon)
    close_minutes(end)
    account(end)
    waits = [s - a for s, a in zip(starts, arrivals, strict=True) if not math.isnan(s)]
    started = [(a, s) for a, s in zip(arrivals, starts, strict=True) if not math.isnan(s)]
    return TierResult(
        name=policy.name, runtime="batch", objective_seconds=policy.objective_seconds,
        waits=waits,
        seconds_above_objective=seconds_above([a for a, _ in started], [s for _, s in started],
                                              policy.objective_seconds),
        peak_tasks=peak, task_hours=slot_seconds / 3600, spot_task_hours=spot_seconds / 3600,
        vcpu=policy.vcpu, memory_gb=policy.memory_gb, duration_hours=end / 3600, series=series,
        interruptions=interruptions, failed=failed)
