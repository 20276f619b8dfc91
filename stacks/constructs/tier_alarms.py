"""One tier's alarms: its queues always, its worker service when the tier runs on Fargate.

Names follow `<app>-<env>-<tier>-<what>`; the `what` of each alarm is a constant below so that
tests and the alarm catalogue (docs/operations.md) name the same things.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from jobfleet_config.config import AlarmsConfig, TierConfig
from jobfleet_config.naming import Naming
from stacks.constructs.alarm_topic import AlarmTopic, Comparison, Missing
from stacks.constructs.cluster import container_insights_metric
from stacks.constructs.tier_queue import TierQueue

DLQ_MESSAGES = "dlq-messages"
OLDEST_MESSAGE = "oldest-message"
SATURATED = "saturated"
MEMORY = "memory"
TASKS_BELOW_DESIRED = "tasks-below-desired"

# Saturation must hold this long before it pages (issue 8: "at max tasks for 15 minutes").
SATURATION_MINUTES = 15
# Running < desired this many consecutive minutes = tasks crash before they become healthy. Long
# enough to ride out a rolling deployment or a Spot replacement, short enough to beat users.
CRASH_LOOP_MINUTES = 10
MEMORY_MINUTES = 3
ONE_MINUTE = cdk.Duration.minutes(1)


class TierAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, thresholds: AlarmsConfig,
                 naming: Naming, tier: TierConfig, tier_queue: TierQueue, topic: AlarmTopic,
                 service: ecs.FargateService | None = None, cluster: ecs.ICluster | None = None) -> None:
        super().__init__(scope, construct_id)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def name(what: str) -> str:
            return naming.resource_name(tier.name, what)

        # SQS stops publishing metrics for a queue that is empty and untouched for hours; a DLQ
        # holding messages is never in that state, so no data means an empty DLQ: not breaching.
        self.alarms[DLQ_MESSAGES] = topic.alarm(
            self, "DlqMessages", alarm_name=name(DLQ_MESSAGES),
            description=f"{tier.name}: jobs dead-lettered. Read the reason attributes on the DLQ "
                        "messages, fix the cause, then redrive (docs/operations.md).",
            metric=tier_queue.dead_letter_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=ONE_MINUTE),
            threshold=thresholds.dlq_messages_threshold,
            comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
        # An idle queue may publish nothing; an idle queue has no old message: not breaching.
        self.alarms[OLDEST_MESSAGE] = topic.alarm(
            self, "OldestMessage", alarm_name=name(OLDEST_MESSAGE),
            description=f"{tier.name}: a job has waited longer than the latency objective "
                        f"({tier.latency_objective_seconds} s) without starting.",
            metric=tier_queue.queue.metric_approximate_age_of_oldest_message(
                statistic="Maximum", period=ONE_MINUTE),
            threshold=tier.latency_objective_seconds,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
        if service is None or cluster is None:
            return

        visible = tier_queue.queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=ONE_MINUTE)
        running = container_insights_metric("RunningTaskCount", service, cluster)
        desired = container_insights_metric("DesiredTaskCount", service, cluster)
        # Backlog per task counts only while the service is pinned at max_tasks: below max, the
        # scaling policy is still adding tasks and a high ratio is not yet saturation.
        saturation = cloudwatch.MathExpression(
            expression=f"IF(running >= {tier.max_tasks}, visible / running, 0)",
            using_metrics={"visible": visible, "running": running},
            label=f"{tier.name} backlog per task at max tasks",
            period=ONE_MINUTE,
        )
        # No data = no running tasks reported (scaled to zero): cannot be saturated.
        self.alarms[SATURATED] = topic.alarm(
            self, "Saturated", alarm_name=name(SATURATED),
            description=f"{tier.name}: backlog per task above target ({tier.backlog_per_task_target:g}) "
                        f"while running at max_tasks ({tier.max_tasks}) for {SATURATION_MINUTES} "
                        "minutes. Raise max_tasks or concurrency, or find what slowed the jobs.",
            metric=saturation,
            threshold=tier.backlog_per_task_target,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=SATURATION_MINUTES, missing=Missing.NOT_BREACHING,
        )
        # Maximum over the service's tasks: one task near its limit is about to be OOM-killed.
        # No data = no tasks running: nothing can run out of memory.
        self.alarms[MEMORY] = topic.alarm(
            self, "Memory", alarm_name=name(MEMORY),
            description=f"{tier.name}: a worker task uses more than "
                        f"{thresholds.memory_utilization_percent} % of its memory.",
            metric=service.metric_memory_utilization(statistic="Maximum", period=ONE_MINUTE),
            threshold=thresholds.memory_utilization_percent,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=MEMORY_MINUTES, missing=Missing.NOT_BREACHING,
        )
        shortfall = cloudwatch.MathExpression(
            expression="desired - running",
            using_metrics={"desired": desired, "running": running},
            label=f"{tier.name} tasks below desired",
            period=ONE_MINUTE,
        )
        # Missing data keeps the current state (IGNORE): a crash-looping service must not flip to
        # OK because Container Insights skipped a minute while its tasks were restarting.
        self.alarms[TASKS_BELOW_DESIRED] = topic.alarm(
            self, "TasksBelowDesired", alarm_name=name(TASKS_BELOW_DESIRED),
            description=f"{tier.name}: fewer tasks running than desired for {CRASH_LOOP_MINUTES} "
                        "minutes: tasks are failing to start or crash-looping (OOM, bad image, "
                        "failing health check). See the service's stopped-task reasons.",
            metric=shortfall,
            threshold=0,
            comparison=Comparison.GREATER_THAN_THRESHOLD,
            evaluation_periods=CRASH_LOOP_MINUTES, missing=Missing.IGNORE,
        )
