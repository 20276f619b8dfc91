"""The environment's CloudWatch dashboard `<app>-<env>`.

Top: every alarm's state. Then one row per tier: backlog / in flight / DLQ, oldest message age
against the latency objective, running vs desired tasks, job outcomes and durations (the worker's
EMF metrics: namespace JobFleet, dimensions Tier + JobType, see worker_image/worker/observability.py),
memory. Then the API, Batch and the redrive function.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from jobfleet_config.config import AlarmsConfig, TierConfig
from stacks.constructs.api_alarms import ApiAlarms
from stacks.constructs.batch_alarms import BatchAlarms
from stacks.constructs.cluster import container_insights_metric
from stacks.constructs.tier_queue import TierQueue

WORKER_NAMESPACE = "JobFleet"  # = worker.observability.NAMESPACE
OUTCOMES = ("JobsSucceeded", "JobsFailed", "JobsDeadLettered")
ONE_MINUTE = cdk.Duration.minutes(1)
FIVE_MINUTES = cdk.Duration.minutes(5)
HEIGHT = 6


def worker_metric(metric_name: str, tier: str, job_type: str | None, statistic: str,
                  period: cdk.Duration = FIVE_MINUTES) -> cloudwatch.Metric:
    dimensions = {"Tier": tier} if job_type is None else {"Tier": tier, "JobType": job_type}
    label = f"{metric_name} {job_type}" if job_type else metric_name
    return cloudwatch.Metric(namespace=WORKER_NAMESPACE, metric_name=metric_name,
                             dimensions_map=dimensions, statistic=statistic, period=period,
                             label=f"{label} ({statistic})")


def _graph(title: str, left: Sequence[cloudwatch.IMetric], right: Sequence[cloudwatch.IMetric] = (),
           width: int = 6, annotation: tuple[float, str] | None = None) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title, left=list(left), right=list(right), width=width, height=HEIGHT,
        left_annotations=[cloudwatch.HorizontalAnnotation(value=annotation[0], label=annotation[1])]
        if annotation else None,
    )


class OperationsDashboard(Construct):
    """Dashboard `name`; `thresholds` are drawn as annotations beside the metrics they watch."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str,
                 thresholds: AlarmsConfig) -> None:
        super().__init__(scope, construct_id)
        self.dashboard_name = name
        self.thresholds = thresholds
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard",
            dashboard_name=name,
            default_interval=cdk.Duration.hours(3),
        )

    def add_alarm_status(self, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(
            title=f"{self.dashboard_name} alarms", alarms=list(alarms), width=24,
            height=max(3, 1 + (len(alarms) + 3) // 4),
            sort_by=cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP))

    def add_tier(self, tier: TierConfig, job_types: Sequence[str], tier_queue: TierQueue,
                 service: ecs.FargateService | None, cluster: ecs.ICluster | None) -> None:
        """One row for ``tier``, with a graph line per job type routed to it (``job_types``)."""
        queue, dlq = tier_queue.queue, tier_queue.dead_letter_queue
        header = (f"## Tier `{tier.name}` ({tier.runtime}) — latency objective "
                  f"{tier.latency_objective_seconds} s, job types: {', '.join(job_types) or 'none'}")
        row: list[cloudwatch.IWidget] = [
            _graph("Backlog, in flight, dead-lettered", [
                queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=ONE_MINUTE, label="backlog (visible)"),
                queue.metric_approximate_number_of_messages_not_visible(
                    statistic="Maximum", period=ONE_MINUTE, label="in flight (not visible)"),
            ], right=[dlq.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=ONE_MINUTE, label="DLQ")]),
            _graph("Oldest message age (s)", [queue.metric_approximate_age_of_oldest_message(
                statistic="Maximum", period=ONE_MINUTE, label="oldest message")],
                annotation=(tier.latency_objective_seconds, "latency objective")),
        ]
        if service is not None and cluster is not None:
            row.append(_graph("Tasks", [
                container_insights_metric("RunningTaskCount", service, cluster),
                container_insights_metric("DesiredTaskCount", service, cluster),
            ], annotation=(tier.max_tasks, "max_tasks")))
            row.append(_graph("Memory", [
                service.metric_memory_utilization(statistic="Maximum", period=ONE_MINUTE,
                                                  label="memory % (max task)"),
            ], right=[worker_metric("MemoryPauses", tier.name, None, "Sum")],
                annotation=(self.thresholds.memory_utilization_percent, "alarm")))
        else:
            row.append(_graph("Memory pauses", [worker_metric("MemoryPauses", tier.name, None, "Sum")]))
        row.append(_graph("Job outcomes", [
            worker_metric(name, tier.name, job_type, "Sum") for job_type in job_types for name in OUTCOMES
        ], right=[worker_metric("BreakerOpens", tier.name, job_type, "Sum") for job_type in job_types]))
        row.append(_graph("Job duration and queue wait (ms)", [
            worker_metric("JobDuration", tier.name, job_type, stat)
            for job_type in job_types for stat in ("p50", "p95")
        ], right=[worker_metric("QueueWait", tier.name, job_type, "p95") for job_type in job_types]))
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=header, width=24, height=1))
        # Six widgets of width 6 wrap onto two rows of the 24-column grid.
        self.dashboard.add_widgets(*row)

    def add_api(self, api: ApiAlarms, service: ecs.FargateService, cluster: ecs.ICluster) -> None:
        widgets: list[cloudwatch.IWidget] = [
            _graph("API response time (s)", [api.p95], annotation=(
                self.thresholds.p95_response_seconds, "p95 alarm")),
            _graph("API 5xx", [api.elb_5xx, api.target_5xx], right=[api.requests]),
            _graph("API target 5xx %", [api.target_5xx_rate],
                   annotation=(self.thresholds.target_5xx_rate_percent, "alarm")),
            _graph("API hosts", [api.healthy, api.unhealthy]),
        ]
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## API", width=24, height=1))
        self.dashboard.add_widgets(*widgets)
        self.dashboard.add_widgets(_graph("API tasks", [
            container_insights_metric("RunningTaskCount", service, cluster),
            container_insights_metric("DesiredTaskCount", service, cluster),
        ]), _graph("API CPU / memory %", [
            service.metric_cpu_utilization(period=ONE_MINUTE),
            service.metric_memory_utilization(statistic="Maximum", period=ONE_MINUTE)]))

    def add_batch(self, alarms: BatchAlarms) -> None:
        self.dashboard.add_widgets(cloudwatch.TextWidget(
            markdown=f"## Batch jobs: tier `{alarms.tier}`", width=24, height=1))
        self.dashboard.add_widgets(
            _graph(f"{alarms.tier}: failed Batch jobs (per hour)", [alarms.failed_jobs], width=12),
            _graph(f"{alarms.tier}: job queue blocked by a RUNNABLE job", [alarms.blocked], width=12),
        )

    def add_redrive(self, function: lambda_.IFunction) -> None:
        period = FIVE_MINUTES
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## DLQ redrive", width=24, height=1))
        self.dashboard.add_widgets(
            _graph("Redrive invocations", [function.metric_invocations(period=period),
                                           function.metric_errors(period=period),
                                           function.metric_throttles(period=period)], width=12),
            _graph("Redrive duration (ms)", [function.metric_duration(statistic="Maximum",
                                                                      period=period)], width=12),
        )
