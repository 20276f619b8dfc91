"""Alarms that roll an ECS deployment back (ECS deployment alarms), beside the circuit breaker.

The circuit breaker catches tasks that never become healthy; these catch tasks that do start but
behave badly: the API answering 5xx, workers failing their jobs or running out of memory. While a
deployment is in progress ECS watches the alarms; one in ALARM marks the deployment failed and
ECS rolls back to the last completed one.

They live in the service's own stack (ECS looks them up by name, so they must exist before the
first deployment; the Operations stack deploys after Compute) and have no actions: the paging
alarms on the same signals are in the Operations stack. Construct IDs ("Target5xxRate",
"FailedJobs", "Memory") are frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from jobfleet_config.config import AlarmsConfig, TierConfig
from jobfleet_config.naming import Naming
from stacks.guard import suppress
from stacks.nag import acknowledge_report

ONE_MINUTE = cdk.Duration.minutes(1)
# A worker deployment is judged on at least this many finished jobs a minute, so that one unlucky
# job of a quiet tier never rolls a deployment back.
MIN_JOBS_JUDGED = 5
NAMESPACE = "JobFleet"  # = worker.observability.NAMESPACE
_NO_ACTIONS = ("Deployment alarm: ECS reads its state to roll a bad deployment back; the paging "
               "alarm on the same signal is in the Operations stack and notifies the alarm topic.")


class DeploymentAlarms(Construct):
    """Alarms (construct ID -> alarm) that ECS watches during a deployment of `service`."""

    def __init__(self, scope: Construct, construct_id: str, *, service: ecs.BaseService) -> None:
        super().__init__(scope, construct_id)
        self.service = service
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._names: list[str] = []

    def add(self, construct_id: str, metric: cloudwatch.Metric | cloudwatch.MathExpression, *,
            alarm_name: str,
            description: str, threshold: float) -> None:
        """Above `threshold` for 3 one-minute periods in a row; no data = nothing failing."""
        alarm = metric.create_alarm(
            self, construct_id, alarm_name=alarm_name, alarm_description=description,
            threshold=threshold, evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        suppress(alarm, "CT.CLOUDWATCH.PR.1", _NO_ACTIONS)
        acknowledge_report(alarm, "CloudWatchAlarmAction", _NO_ACTIONS)
        self.alarms[construct_id] = alarm
        self._names.append(alarm_name)

    def roll_back_on_alarm(self) -> None:
        # The names as literals: a Ref would make the service depend on alarms that depend on it
        # (their metrics carry the service name).
        self.service.enable_deployment_alarms(
            list(self._names),
            behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM)


def api_deployment_alarms(scope: Construct, construct_id: str, *, naming: Naming,
                          thresholds: AlarmsConfig, service: ecs.BaseService,
                          target_group: elbv2.ApplicationTargetGroup) -> DeploymentAlarms:
    """The API: share of requests its tasks answer 5xx."""
    alarms = DeploymentAlarms(scope, construct_id, service=service)
    errors = target_group.metrics.http_code_target(
        elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=ONE_MINUTE, statistic="Sum")
    requests = target_group.metrics.request_count(period=ONE_MINUTE, statistic="Sum")
    alarms.add(
        "Target5xxRate",
        cloudwatch.MathExpression(expression="100 * FILL(errors, 0) / requests",
                                  using_metrics={"errors": errors, "requests": requests},
                                  period=ONE_MINUTE, label="target 5xx % of requests"),
        alarm_name=naming.resource_name("api", "deployment-5xx"),
        description=f"Rolls an API deployment back: more than {thresholds.target_5xx_rate_percent:g} "
                    "% of requests answered 5xx by the tasks, 3 minutes in a row.",
        threshold=thresholds.target_5xx_rate_percent)
    alarms.roll_back_on_alarm()
    return alarms


def worker_deployment_alarms(scope: Construct, construct_id: str, *, naming: Naming,
                             thresholds: AlarmsConfig, tier: TierConfig, job_types: Sequence[str],
                             service: ecs.BaseService) -> DeploymentAlarms:
    """A worker tier: share of its jobs failing (EMF metrics of its `job_types`), memory."""
    alarms = DeploymentAlarms(scope, construct_id, service=service)
    if job_types:
        def jobs(metric_name: str, prefix: str) -> dict[str, cloudwatch.Metric]:
            return {f"{prefix}{i}": cloudwatch.Metric(
                namespace=NAMESPACE, metric_name=metric_name, statistic="Sum", period=ONE_MINUTE,
                dimensions_map={"Tier": tier.name, "JobType": job_type})
                for i, job_type in enumerate(job_types)}

        failed, succeeded = jobs("JobsFailed", "f"), jobs("JobsSucceeded", "s")
        failed_sum = " + ".join(f"FILL({m}, 0)" for m in failed)
        done_sum = " + ".join(f"FILL({m}, 0)" for m in (*failed, *succeeded))
        alarms.add(
            "FailedJobs",
            cloudwatch.MathExpression(
                expression=f"IF(({done_sum}) >= {MIN_JOBS_JUDGED}, 100 * ({failed_sum}) / ({done_sum}), 0)",
                using_metrics={**failed, **succeeded}, period=ONE_MINUTE,
                label="failed % of finished jobs"),
            alarm_name=naming.resource_name(tier.name, "deployment-failed-jobs"),
            description=f"Rolls a {tier.name} worker deployment back: more than "
                        f"{thresholds.deployment_failed_jobs_percent} % of at least "
                        f"{MIN_JOBS_JUDGED} finished jobs a minute failed, 3 minutes in a row.",
            threshold=thresholds.deployment_failed_jobs_percent)
    alarms.add(
        "Memory", service.metric_memory_utilization(statistic="Maximum", period=ONE_MINUTE),
        alarm_name=naming.resource_name(tier.name, "deployment-memory"),
        description=f"Rolls a {tier.name} worker deployment back: a task used more than "
                    f"{thresholds.memory_utilization_percent} % of its memory, 3 minutes in a row.",
        threshold=thresholds.memory_utilization_percent)
    alarms.roll_back_on_alarm()
    return alarms
