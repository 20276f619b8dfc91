"""What the synthesized scaling does, as plain numbers per tier (no aws-cdk-lib: fast to import).

The values come from the environment's config and from the constants below, which mirror
`stacks/constructs/backlog_scaling.py` and the alarms Application Auto Scaling creates for a
target-tracking policy; `tests/jobfleet_tools/test_capacity_model.py` checks them against the
synthesized templates, so a change to the stacks that the simulator does not follow fails a test.
"""

from __future__ import annotations

import dataclasses
import math

from jobfleet_config.config import EnvironmentConfig, TierConfig

# backlog_scaling.py: SCALE_OUT_COOLDOWN_SECONDS (target tracking, which only scales out), the
# wake-up step action's cooldown, the scale-in step actions' cooldown and the 60 s period of every
# metric in the policies and alarms.
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300
WAKE_STEP_COOLDOWN_SECONDS = 60
METRIC_PERIOD_SECONDS = 60
# The "high" alarm Application Auto Scaling manages for a target-tracking policy on a one-minute
# metric: 3 data points above the target. (Its "low" alarm has no effect: DisableScaleIn.)
HIGH_ALARM_DATAPOINTS = 3
# backlog_scaling.py's scale-in alarms: every one of SCALE_IN_MINUTES data points breaching.
# "scale-in": (visible + in flight) / max(running, desired) / target below SCALE_IN_BELOW_RATIO while
# desired > max(min_tasks, 1); steps by percent of the desired count, (lower, upper, percent)
# relative to the threshold, the highest value of the breaching minutes picking the step.
# "scale-to-zero" (min 0): nothing visible or in flight while desired == 1; removes one task.
SCALE_IN_MINUTES = 15
SCALE_IN_BELOW_RATIO = 0.5
SCALE_IN_STEPS = ((-0.25, 0.0, -25), (None, -0.25, -50))
SCALE_TO_ZERO_ADJUSTMENT = -1
# SQS stops publishing metrics of a queue without messages for about six hours.
IDLE_QUEUE_SECONDS = 6 * 3600
# API wake-up: POST -> DescribeServices -> UpdateService(desiredCount=1), measured against moto
# by bench/wake_from_zero.py (well under a second); 1 s is a conservative figure for AWS.
API_WAKE_SECONDS = 1.0
# worker/wake.py keeps the count at >= 1 this long after a wake, until a task runs.
API_WAKE_GUARD_SECONDS = 300
# Batch: the EventBridge Pipe polls the queue and calls SubmitJob (seconds); a job landing on an
# instance that is still up from a previous job starts its container only; AWS Batch scales a
# managed compute environment's idle instances in after a few minutes.
PIPE_SUBMIT_SECONDS = 5.0
BATCH_WARM_START_SECONDS = 30.0
BATCH_WARM_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class ServicePolicy:
    """One Fargate worker tier: target tracking on backlog per task, wake-up, task bounds."""

    name: str
    objective_seconds: float
    concurrency: int
    min_tasks: int
    max_tasks: int
    target: float
    task_start_seconds: float
    metric_lag_seconds: float
    idle_queue_metric_delay_seconds: float
    wake_alarm: bool
    api_wake: bool
    api_wake_interval_seconds: float
    spot_weight: int
    vcpu: float
    memory_gb: float

    @classmethod
    def from_config(cls, config: EnvironmentConfig, tier: TierConfig, *, api_wake: bool = True
                    ) -> ServicePolicy:
        capacity = config.capacity
        return cls(
            name=tier.name, objective_seconds=tier.latency_objective_seconds,
            concurrency=tier.concurrency, min_tasks=tier.min_tasks, max_tasks=tier.max_tasks,
            target=tier.backlog_per_task_target,
            task_start_seconds=capacity.task_start_seconds,
            metric_lag_seconds=capacity.metric_lag_seconds,
            idle_queue_metric_delay_seconds=capacity.idle_queue_metric_delay_seconds,
            wake_alarm=tier.min_tasks == 0,
            api_wake=api_wake and config.api.wake_from_zero and tier.min_tasks == 0,
            api_wake_interval_seconds=config.api.wake_interval_seconds,
            spot_weight=tier.fargate_spot_weight,
            vcpu=tier.cpu / 1024, memory_gb=tier.memory_mib / 1024,
        )

    @property
    def scale_to_zero(self) -> bool:
        """The scale-to-zero alarm exists (min 0 tiers), like the wake-up alarm."""
        return self.min_tasks == 0

    @property
    def scale_in_floor(self) -> int:
        """The scale-in alarm counts only minutes that wanted more tasks than this; the last task
        of a min 0 tier goes only through the scale-to-zero alarm."""
        return max(self.min_tasks, 1)

    def fixed(self, tasks: int) -> ServicePolicy:
        """The same tier held at exactly `tasks` tasks (no scaling): the M/M/c check."""
        return dataclasses.replace(self, min_tasks=tasks, max_tasks=tasks, wake_alarm=False,
                                   api_wake=False)

    def spot_share(self, tasks: float) -> float:
        """Tasks on FARGATE_SPOT out of `tasks`: FARGATE base 1, then 1 : spot_weight."""
        if self.spot_weight == 0 or tasks <= 1:
            return 0.0
        return (tasks - 1) * self.spot_weight / (1 + self.spot_weight)


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    """One AWS Batch tier: Spot slots first, on-demand fallback, retries on Spot reclaims."""

    name: str
    objective_seconds: float
    vcpu: float
    memory_gb: float
    spot_slots: int
    on_demand_slots: int
    retry_attempts: int
    interruptions_per_hour: float
    start_seconds: float
    compute: str

    @classmethod
    def from_config(cls, config: EnvironmentConfig, tier: TierConfig) -> BatchPolicy:
        vcpu = tier.cpu / 1024
        batch = config.batch
        on_demand = math.floor(batch.on_demand_max_vcpus / vcpu) if batch.on_demand_fallback else 0
        return cls(
            name=tier.name, objective_seconds=tier.latency_objective_seconds, vcpu=vcpu,
            memory_gb=tier.memory_mib / 1024,
            spot_slots=math.floor(batch.max_vcpus / vcpu), on_demand_slots=on_demand,
            retry_attempts=config.batch_attempts(tier),
            interruptions_per_hour=config.capacity.spot_interruptions_per_hour,
            start_seconds=config.capacity.batch_start_seconds, compute=batch.compute,
        )
