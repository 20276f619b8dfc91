"""Stateful resources: per-tier queues and DLQs, the job status table, their encryption key.

Kept apart from the compute stacks so that replacing or deleting a service can never touch a
queue holding messages.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.constructs.job_status_table import JobStatusTable
from stacks.constructs.keys import deny_grants_except_for_aws_resources
from stacks.constructs.results_bucket import ResultsBucket, ResultsBucketName
from stacks.constructs.tier_queue import TierQueue
from stacks.retention import removal_policy


class StatefulStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = removal_policy(config.app)

        self.key: kms.IKey | None = None
        if config.queues.encryption == "kms":
            self.key = kms.Key(
                self, "DataKey",
                alias=f"alias/{config.resource_name('data')}",
                description=f"{config.resource_name()}: queues, DLQs and job status table",
                enable_key_rotation=True,
                removal_policy=removal,
            )
            deny_grants_except_for_aws_resources(self.key)

        self.tier_queues: dict[str, TierQueue] = {}
        for tier in config.tiers:
            tier_queue = TierQueue(self, f"Tier-{tier.name}", tier=tier,
                                   queue_name=config.resource_name(tier.name),
                                   removal_policy=removal, key=self.key)
            self.tier_queues[tier.name] = tier_queue
            for label, queue in (("Queue", tier_queue.queue), ("Dlq", tier_queue.dead_letter_queue)):
                cdk.CfnOutput(self, f"{tier.name}-{label}Url", value=queue.queue_url,
                              description=f"{tier.name} tier {label.lower()} URL")
                cdk.CfnOutput(self, f"{tier.name}-{label}Arn", value=queue.queue_arn,
                              description=f"{tier.name} tier {label.lower()} ARN")

        self.status_table: dynamodb.ITableV2 = JobStatusTable(
            self, "JobStatus", table_name=config.resource_name("jobs"),
            removal_policy=removal, point_in_time_recovery=config.app.retain, key=self.key,
        ).table
        cdk.CfnOutput(self, "JobStatusTableName", value=self.status_table.table_name)

        # Job results (results/<jobId>.json), when [results] is enabled.
        self.results_bucket: s3.IBucket | None = None
        results_name = ResultsBucketName.of(config.naming, config.results)
        if results_name is not None:
            self.results_bucket = ResultsBucket(self, "Results", name=results_name,
                                                expiry_days=config.results.expiry_days,
                                                removal_policy=removal).bucket
            cdk.CfnOutput(self, "ResultsBucketName", value=self.results_bucket.bucket_name)
