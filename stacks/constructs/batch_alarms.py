"""Batch-tier alarms: failed jobs and jobs stuck RUNNABLE.

AWS Batch publishes no CloudWatch metric for job outcomes or queue state. Both alarms therefore
count EventBridge rule matches (AWS/Events TriggeredRules by RuleName):

- failed jobs: the batch stack's `failure_rule` (Batch Job State Change, status FAILED, this job
  queue) already routes every failed job to the batch DLQ; its matches are the failed jobs. Jobs
  the queue's RUNNABLE time limit cancels also end FAILED and count here too.
- stuck RUNNABLE: Batch emits a "Batch Job Queue Blocked" event when a RUNNABLE job blocks the
  head of a queue (no capacity, compute environment too small, job asks for more than any
  instance has), with the cause in statusReason. A rule on that event for this job queue pages
  while the job is stuck, before the queue's time limit cancels it. A rule on "Batch Job State
  Change" with status RUNNABLE would not do: every job passes through RUNNABLE, so it cannot tell
  stuck from queued.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from constructs import Construct

from jobfleet_config.naming import Naming
from stacks.constructs.alarm_topic import AlarmTopic, Comparison, Missing
from stacks.nag import acknowledge_report

FAILED_JOBS = "failed-jobs"
RUNNABLE_BLOCKED = "runnable-blocked"


def rule_matches(rule_name: str, period: cdk.Duration) -> cloudwatch.Metric:
    return cloudwatch.Metric(namespace="AWS/Events", metric_name="TriggeredRules",
                             dimensions_map={"RuleName": rule_name}, statistic="Sum", period=period)


class BatchAlarms(Construct):
    """Alarms of one batch tier (its job queue and failure rule)."""

    def __init__(self, scope: Construct, construct_id: str, *, naming: Naming,
                 failed_jobs_threshold: int, tier: str, job_queue: batch.IJobQueue,
                 failure_rule: events.IRule, topic: AlarmTopic) -> None:
        super().__init__(scope, construct_id)
        self.tier = tier
        self.blocked_rule = events.Rule(
            self, "QueueBlocked",
            rule_name=naming.resource_name(tier, "queue-blocked"),
            description=f"A RUNNABLE job blocks the head of the {tier} job queue",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job Queue Blocked"],
                detail={"jobQueue": [job_queue.job_queue_arn]},
            ),
        )
        acknowledge_report(self.blocked_rule, "EventBusDLQ",
                           "The rule has no target: it exists for its MatchedEvents metric, which "
                           "the runnable-blocked alarm watches; there is no delivery to dead-letter.")
        self.failed_jobs = rule_matches(failure_rule.rule_name, cdk.Duration.hours(1))
        self.blocked = rule_matches(self.blocked_rule.rule_name, cdk.Duration.minutes(5))
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        # EventBridge publishes rule metrics only when a rule matched: no data = no failed job.
        self.alarms[FAILED_JOBS] = topic.alarm(
            self, "FailedJobs", alarm_name=naming.resource_name(tier, FAILED_JOBS),
            description=f"{tier}: Batch jobs failed in the last hour (including jobs the queue "
                        "cancelled after waiting RUNNABLE too long); they are in the tier's DLQ "
                        "with the reason.",
            metric=self.failed_jobs,
            threshold=failed_jobs_threshold,
            comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
        # Same: no blocked-queue event = nothing stuck.
        self.alarms[RUNNABLE_BLOCKED] = topic.alarm(
            self, "RunnableBlocked", alarm_name=naming.resource_name(tier, RUNNABLE_BLOCKED),
            description=f"{tier}: a Batch job is stuck RUNNABLE and blocks the queue (see the job's "
                        "statusReason: capacity, compute environment max vCPUs, or resource "
                        "requirements). The queue cancels it after batch.runnable_timeout_seconds.",
            metric=self.blocked,
            threshold=1,
            comparison=Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1, missing=Missing.NOT_BREACHING,
        )
