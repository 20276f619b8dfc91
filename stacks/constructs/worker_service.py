"""One tier's worker Fargate service: the `python -m worker run` container and its permissions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from jobfleet_config.config import AlarmsConfig, TierConfig
from jobfleet_config.naming import Naming
from jobfleet_contract import environment as names
from jobfleet_contract.environment import worker_environment
from stacks.constructs.cluster import capacity_provider_strategy
from stacks.constructs.deployment_alarms import worker_deployment_alarms
from stacks.constructs.hardened_container import (
    acknowledge_kms_grant_wildcards,
    add_hardened_container,
    fargate_task_definition,
)
from stacks.constructs.job_status_table import grant_status_access
from stacks.constructs.team_workload import (
    CPU_ARCHITECTURES,
    JobCompletion,
    container_secrets,
    fargate_storage_gib,
    grant_secrets_key,
    team_permissions,
)
from stacks.constructs.tier_queue import TierQueue
from stacks.logs import LogSettings
from stacks.nag import acknowledge

HEALTH_FILE = "/tmp/worker-health"


class WorkerService(Construct):
    """Fargate service consuming one tier queue.

    No `desiredCount` is set: the scaling policies own the task count, so a deploy never resets
    it (with no DesiredCount in the template CloudFormation leaves the running count alone).
    The task role may consume its own queue, send to its own queue (deferred re-sends) and its
    own DLQ (dead-lettering with the reason), update job status, and set scale-in protection on
    tasks of this cluster only.

    `job_types` are the job types routed to the tier and `job_settings` their non-default settings
    (the keyword arguments of jobfleet_contract.environment.job_type_environment); `thresholds`
    are the environment's alarm thresholds its deployment alarms use.
    """

    def __init__(self, scope: Construct, construct_id: str, *, tier: TierConfig, naming: Naming,
                 logs: LogSettings, thresholds: AlarmsConfig, job_types: Sequence[str],
                 job_settings: Mapping[str, Mapping[str, Any]], status_ttl_days: int,
                 completion: JobCompletion, tier_queue: TierQueue, cluster: ecs.ICluster,
                 image: ecs.ContainerImage, status_table: dynamodb.ITableV2) -> None:
        super().__init__(scope, construct_id)
        queue, dlq = tier_queue.queue, tier_queue.dead_letter_queue
        self.task_definition = fargate_task_definition(
            self, "TaskDefinition", cpu=tier.cpu, memory_mib=tier.memory_mib,
            architecture=CPU_ARCHITECTURES[tier.architecture],
            ephemeral_storage_gib=fargate_storage_gib(tier))
        self.container = add_hardened_container(
            self.task_definition, "Worker",
            logs=logs,
            image=image,
            command=["python", "-m", "worker", "run"],
            environment={
                # The team's own variables first: JobFleet's names are refused at synth anyway.
                **tier.environment,
                **worker_environment(
                    tier=tier.name, queue_url=queue.queue_url, dlq_url=dlq.queue_url,
                    max_receive_count=tier.max_receive_count, concurrency=tier.concurrency,
                    handlers=",".join(tier.handler_modules), max_job_seconds=tier.max_job_seconds,
                    stop_timeout_seconds=tier.stop_timeout_seconds, status_table=status_table.table_name,
                    status_ttl_days=status_ttl_days, health_file=HEALTH_FILE,
                ),
                **names.job_type_environment(**job_settings),
                **completion.environment(),
            },
            secrets=container_secrets(self, tier),
            memory_mib=tier.memory_mib,
            stop_timeout_seconds=tier.stop_timeout_seconds,
            stream_prefix=tier.name,
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-m", "worker", "health"],
                interval=cdk.Duration.seconds(30),
                timeout=cdk.Duration.seconds(10),
                retries=3,
                start_period=cdk.Duration.seconds(60),
            ),
        )

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=cluster.vpc, allow_all_outbound=True,
            description=(f"{naming.resource_name(tier.name)} workers: no inbound; "
                         "out to AWS APIs and job targets"),
        )
        strategy = capacity_provider_strategy(tier)
        self.service = ecs.FargateService(
            self, "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            service_name=naming.resource_name(tier.name, "workers"),
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Start the new tasks before stopping old ones: a deploy never lowers capacity.
            min_healthy_percent=100,
            max_healthy_percent=200,
            capacity_provider_strategies=strategy,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )

        # Roll a deployment back when its tasks fail their jobs or run out of memory.
        self.deployment_alarms = worker_deployment_alarms(
            self, "DeploymentAlarms", naming=naming, thresholds=thresholds, tier=tier,
            job_types=job_types, service=self.service)

        role = self.task_definition.task_role
        queue.grant_consume_messages(role)
        queue.grant_send_messages(role)
        dlq.grant_send_messages(role)
        grant_status_access(status_table, role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        completion.grant(self, role)
        team_permissions(self, tier, role)
        grant_secrets_key(self, tier, self.task_definition.obtain_execution_role())
        # The worker holds scale-in protection through the ECS agent endpoint while it holds
        # messages, so a scale-in never stops a busy task. Scoped to this cluster's tasks.
        # A policy of its own, so that its acknowledged wildcard covers nothing else.
        cluster_tasks = cdk.Stack.of(self).format_arn(
            service="ecs", resource="task", resource_name=f"{cluster.cluster_name}/*",
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)
        protection = iam.Policy(self, "TaskProtectionPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                                resources=[cluster_tasks])])
        acknowledge(protection, f"IAM5[Resource::{nag_evidence(self, cluster_tasks)}]",
                    "Task IDs are unknown at deploy time: task protection is scoped to the tasks "
                    "of this cluster (task/<cluster>/*), the narrowest ARN ECS allows.")
        if queue.encryption_master_key is not None:
            acknowledge_kms_grant_wildcards(role)


def nag_evidence(scope: Construct, value: str) -> str:
    """A token-bearing string as cdk-nag prints it in a finding: `<Ref>` / `<Id.Attr>` parts."""
    resolved = cdk.Stack.of(scope).resolve(value)
    parts = resolved["Fn::Join"][1] if isinstance(resolved, dict) and "Fn::Join" in resolved \
        else [resolved]
    rendered = []
    for part in parts:
        if isinstance(part, str):
            rendered.append(part)
        elif "Ref" in part:
            rendered.append(f"<{part['Ref']}>")
        elif "Fn::GetAtt" in part:
            rendered.append(f"<{part['Fn::GetAtt'][0]}.{part['Fn::GetAtt'][1]}>")
        else:
            raise ValueError(f"cannot render {part!r} as cdk-nag evidence")
    return "".join(rendered)
