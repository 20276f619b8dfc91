"""Batch tier: hours-long jobs on AWS Batch Spot, fed from the tier's queue, failures to its DLQ.

One stack per environment for every tier whose runtime is "batch" (the stage creates it only when
there is one). The compute environments are shared; each batch tier gets its own job queue, job
definition, feed (submitter function) and failure route:

    SQS tier queue --submitter Lambda (SubmitJob, envelope as a parameter)--> job queue
        --> Spot compute (order 1), on-demand fallback (order 2) --> `python -m worker run-one`
    Batch Job State Change FAILED --rule--> tier DLQ ({"envelope": ..., "failure": ...})

`tiers` holds every batch tier's job queue, job definition, feed and failure rule (the operations
stack alarms on each); `job_queue`, `job_definition` and `failure_rule` are the first batch tier's.
Construct IDs ("Compute", "Tier-<name>" with "JobQueue", "Job", "Feed", "Failures") are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.constructs.batch_compute import BatchCompute, runnable_time_limits
from stacks.constructs.batch_failure_route import BatchFailureRoute
from stacks.constructs.batch_feed import BatchFeed
from stacks.constructs.batch_job_definition import BatchJobDefinition
from stacks.constructs.team_workload import JobCompletion, container_image
from stacks.constructs.tier_queue import TierQueue
from stacks.logs import LogSettings


@dataclass(frozen=True)
class BatchTier:
    job_queue: batch.JobQueue
    job_definition: batch.EcsJobDefinition
    feed: BatchFeed
    failure_rule: events.Rule


class BatchStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 vpc: ec2.IVpc, tier_queues: dict[str, TierQueue],
                 status_table: dynamodb.ITableV2, key: kms.IKey | None, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if not config.batch_tiers:
            raise ValueError("BatchStack needs at least one tier with runtime = \"batch\"")
        self.compute = BatchCompute(self, "Compute", config=config.batch, vpc=vpc)
        logs = LogSettings.of(config)
        completion = JobCompletion.of(config)

        self.tiers: dict[str, BatchTier] = {}
        for tier in config.batch_tiers:
            scope_ = Construct(self, f"Tier-{tier.name}")
            name = config.resource_name(tier.name)
            job_queue = batch.JobQueue(
                scope_, "JobQueue",
                job_queue_name=name,
                compute_environments=self.compute.ordered_environments(),
                job_state_time_limit_actions=runnable_time_limits(
                    config.batch.runnable_timeout_seconds),
            )
            # The default is the worker image asset the Fargate tiers use (same directory and
            # platform, so the same asset hash: built and pushed once).
            image = container_image(self, tier.image, tier.architecture,
                                    worker_image=config.worker_image)
            job = BatchJobDefinition(scope_, "Job", tier=tier, name=name, settings=config.batch,
                                     logs=logs, job_settings=config.tier_job_settings(tier),
                                     status_ttl_days=config.status.ttl_days, completion=completion,
                                     attempts=config.batch_attempts(tier),
                                     status_table=status_table, key=key, image=image)
            queues = tier_queues[tier.name]
            feed = BatchFeed(
                scope_, "Feed", function_name=config.resource_name(tier.name, "feed"),
                queue=queues.queue, job_queue=job_queue,
                job_definition=job.job_definition, job_name=name, logs=logs)
            failures = BatchFailureRoute(
                scope_, "Failures", rule_name=config.resource_name(tier.name, "failed"),
                job_queue=job_queue, dead_letter_queue=queues.dead_letter_queue, key=key)
            self.tiers[tier.name] = BatchTier(job_queue=job_queue, job_definition=job.job_definition,
                                              feed=feed, failure_rule=failures.rule)
            cdk.CfnOutput(self, f"{tier.name}-JobQueueArn", value=job_queue.job_queue_arn,
                          description=f"{tier.name} tier Batch job queue ARN")

        first = self.tiers[config.batch_tiers[0].name]
        self.job_queue: batch.JobQueue = first.job_queue
        self.job_definition: batch.EcsJobDefinition = first.job_definition
        self.failure_rule: events.Rule = first.failure_rule
