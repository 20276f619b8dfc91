"""The job definition of one batch tier: the worker image running `python -m worker run-one`.

The envelope arrives as the job parameter `envelope` (set by the feed function from the SQS
body, byte for byte) and reaches the worker as `--envelope Ref::envelope`; the message's redrive
generation as `--generation Ref::generation` (default "0"; jobfleet_contract/batch.py). Keeping
the envelope a parameter, not an environment override, puts it at a fixed path of Batch's job state
change events (`detail.parameters.envelope`), which is how the failure route hands the original
envelope to the DLQ.

Retries: Spot reclaims (status reason `Host EC2*`; on Fargate Spot `Your Spot Task was
interrupted*`) are retried up to `batch.spot_retry_attempts`; every other failure exits at once
(exit code 1: the job failed, 2: permanently; run-one does not retry, the dead letter can be redriven).
Construct IDs ("Logs", "JobRole", "Container", "JobDefinition") are frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from jobfleet_config.config import BatchConfig, TierConfig
from jobfleet_contract import batch as batch_job
from jobfleet_contract import environment as names
from jobfleet_contract.batch import EC2_SPOT_RECLAIMED, FARGATE_SPOT_RECLAIMED
from jobfleet_contract.environment import batch_job_environment
from stacks.constructs.hardened_container import CONTAINER_USER, TMP_PATH, TMP_VOLUME
from stacks.constructs.team_workload import (
    CPU_ARCHITECTURES,
    JobCompletion,
    container_secrets,
    fargate_storage_gib,
    grant_secrets_key,
    team_permissions,
)
from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge

COMMAND = list(batch_job.COMMAND)


class BatchJobDefinition(Construct):
    """Job definition `name` of `tier`; `settings` ([batch]) choose Fargate or EC2 and the Spot retries.

    `job_settings` are the non-default settings of the tier's job types (the keyword arguments of
    jobfleet_contract.environment.job_type_environment).
    """

    def __init__(self, scope: Construct, construct_id: str, *, tier: TierConfig, name: str,
                 settings: BatchConfig, logs: LogSettings,
                 job_settings: Mapping[str, Mapping[str, Any]], status_ttl_days: int,
                 completion: JobCompletion, status_table: dynamodb.ITableV2, key: kms.IKey | None,
                 image: ecs.ContainerImage) -> None:
        super().__init__(scope, construct_id)
        fargate = settings.compute == "fargate-spot"
        self.log_group = project_log_group(self, "Logs", settings=logs)
        self.job_role = iam.Role(
            self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"{name} batch jobs")
        status_table.grant(self.job_role, "dynamodb:UpdateItem", "dynamodb:GetItem")
        if key is not None:
            key.grant(self.job_role, "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")

        completion.grant(self, self.job_role)
        team_permissions(self, tier, self.job_role)
        container_props: dict[str, Any] = {
            "image": image,
            "command": COMMAND,
            "cpu": tier.cpu / 1024,
            "memory": cdk.Size.mebibytes(tier.memory_mib),
            "environment": {
                **tier.environment,
                **batch_job_environment(
                    tier=tier.name, handlers=",".join(tier.handler_modules),
                    status_table=status_table.table_name, status_ttl_days=status_ttl_days,
                    max_job_seconds=tier.max_job_seconds, region=cdk.Aws.REGION,
                ),
                **names.job_type_environment(**job_settings),
                **completion.environment(),
            },
            "secrets": container_secrets(self, tier, batch.Secret) or None,
            "job_role": self.job_role,
            "logging": ecs.LogDriver.aws_logs(stream_prefix=tier.name, log_group=self.log_group),
            "readonly_root_filesystem": True,
            "user": CONTAINER_USER,
            "volumes": [batch.EcsVolume.host(name=TMP_VOLUME, container_path=TMP_PATH, readonly=False)],
        }
        if fargate:
            storage = fargate_storage_gib(tier)
            self.container: batch.IEcsContainerDefinition = batch.EcsFargateContainerDefinition(
                self, "Container", assign_public_ip=False,
                fargate_platform_version=ecs.FargatePlatformVersion.LATEST,
                fargate_cpu_architecture=CPU_ARCHITECTURES[tier.architecture],
                ephemeral_storage_size=cdk.Size.gibibytes(storage) if storage else None,
                **container_props)
            reclaimed = FARGATE_SPOT_RECLAIMED
        else:
            self.container = batch.EcsEc2ContainerDefinition(self, "Container", **container_props)
            reclaimed = EC2_SPOT_RECLAIMED
        # The container's execution role (created by CDK) reads the secrets; their key, when named.
        grant_secrets_key(self, tier, self.container.execution_role)
        self.job_definition = batch.EcsJobDefinition(
            self, "JobDefinition",
            job_definition_name=name,
            container=self.container,
            timeout=cdk.Duration.seconds(tier.max_job_seconds),
            parameters=dict(batch_job.DEFAULT_PARAMETERS),
            retry_attempts=settings.spot_retry_attempts,
            retry_strategies=[
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason=reclaimed)),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
            ],
            propagate_tags=True,
        )
        acknowledge(self.container, "IAM5[Resource::*]",
                    "The execution role pulls the worker image: ecr:GetAuthorizationToken has no "
                    "resource-level permissions and must be granted on *.")
