"""The job API: a Fargate service behind the ALB that puts jobs on the tier queues."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from constructs import Construct

from jobfleet_config.config import AlarmsConfig, ApiConfig, ResultsConfig
from jobfleet_config.naming import Naming
from jobfleet_contract.environment import ApiAuth, api_environment, api_results_environment
from stacks.constructs.deployment_alarms import api_deployment_alarms
from stacks.constructs.hardened_container import (
    acknowledge_kms_grant_wildcards,
    add_hardened_container,
    fargate_task_definition,
)
from stacks.constructs.job_status_table import grant_status_access
from stacks.constructs.results_bucket import ResultsBucketName, grant_results
from stacks.constructs.team_workload import CPU_ARCHITECTURES
from stacks.constructs.tier_queue import TierQueue
from stacks.logs import LogSettings

API_PORT = 8080
# The API holds no long work: a short drain is enough for in-flight requests (the ALB
# deregistration delay below stops new ones first).
API_STOP_TIMEOUT_SECONDS = 30


class ApiService(Construct):
    """Fargate service in private subnets, no public IP, registered with the ALB listener.

    Its task role may send to the tier queues (and read their attributes) and nothing else on
    them: no receive, no delete. It may create, read and withdraw job status records. With
    `wake_services` (tiers that scale to zero) it may describe those services and set their desired
    count (worker/wake.py starts the first task when a job arrives), on those services only.

    `job_types` maps each job type to its tier; `tier_max_payload_bytes` holds the tiers whose
    payload limit is tighter than `api.max_payload_bytes`; `thresholds` are the environment's alarm
    thresholds its deployment alarm uses.
    """

    def __init__(self, scope: Construct, construct_id: str, *, api: ApiConfig, naming: Naming,
                 logs: LogSettings, thresholds: AlarmsConfig, job_types: Mapping[str, str],
                 tier_max_payload_bytes: Mapping[str, int], status_ttl_days: int,
                 results: ResultsConfig, cluster: ecs.ICluster, listener: elbv2.ApplicationListener,
                 image: ecs.ContainerImage, tier_queues: dict[str, TierQueue],
                 status_table: dynamodb.ITableV2, auth: ApiAuth,
                 wake_services: dict[str, ecs.FargateService] | None = None) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.task_definition = fargate_task_definition(self, "TaskDefinition", cpu=api.cpu,
                                                       memory_mib=api.memory_mib,
                                                       architecture=CPU_ARCHITECTURES[api.architecture])
        # GET /jobs/{id}: small results inline, larger ones as a presigned URL.
        result_settings = (api_results_environment(inline_max_bytes=results.inline_max_bytes,
                                                   url_seconds=results.url_seconds)
                           if results.enabled else {})
        # The reference API is `python -m worker api`; a user's own image runs its own command.
        command = [] if api.image else ["python", "-m", "worker", "api"]
        self.container = add_hardened_container(
            self.task_definition, "Api",
            logs=logs,
            image=image,
            command=command or None,
            # Queue URLs are tokens: the JSON is built at deploy time (to_json_string).
            environment=api_environment(
                tier_queue_urls={name: tq.queue.queue_url for name, tq in tier_queues.items()},
                job_types=job_types, status_table=status_table.table_name,
                status_ttl_days=status_ttl_days, max_payload_bytes=api.max_payload_bytes,
                tier_max_payload_bytes=tier_max_payload_bytes, port=API_PORT,
                wake_services={tier: (cluster.cluster_name, service.service_name)
                               for tier, service in (wake_services or {}).items()},
                wake_interval_seconds=api.wake_interval_seconds,
                to_json=stack.to_json_string, auth=auth,
            ) | result_settings,
            memory_mib=api.memory_mib,
            stop_timeout_seconds=API_STOP_TIMEOUT_SECONDS,
            stream_prefix="api",
            port_mappings=[ecs.PortMapping(container_port=API_PORT)],
        )

        self.service = ecs.FargateService(
            self, "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            service_name=naming.resource_name("api"),
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=cdk.Duration.seconds(60),
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)],
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.target_group = listener.add_targets(
            "Api",
            port=API_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            deregistration_delay=cdk.Duration.seconds(API_STOP_TIMEOUT_SECONDS - 5),
            health_check=elbv2.HealthCheck(
                path=api.health_check_path,
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )

        # Roll a deployment back when its tasks answer 5xx.
        self.deployment_alarms = api_deployment_alarms(
            self, "DeploymentAlarms", naming=naming, thresholds=thresholds, service=self.service,
            target_group=self.target_group)

        role = self.task_definition.task_role
        for tier_queue in tier_queues.values():
            tier_queue.queue.grant_send_messages(role)
        if any(tq.queue.encryption_master_key is not None for tq in tier_queues.values()):
            acknowledge_kms_grant_wildcards(role)
        # Put (conditional: new job / idempotency claim), Get (status lookup), Update (confirm a
        # claim), Delete (conditional: undo a `queued` record or a claim after a failed send).
        grant_status_access(status_table, role, "dynamodb:PutItem", "dynamodb:GetItem",
                            "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        grant_results(ResultsBucketName.of(naming, results), role, "s3:GetObject", self)
        if wake_services:
            # Read and raise the desired count of the services that scale to zero, nothing else:
            # UpdateService could also change their task definition, so no other service is named.
            iam.Policy(self, "WakePolicy", roles=[role], statements=[iam.PolicyStatement(
                sid="WakeFromZero", actions=["ecs:DescribeServices", "ecs:UpdateService"],
                resources=[service.service_arn for service in wake_services.values()])])

        # Request-driven work: CPU and (optionally) ALB requests per task, min..max from config.
        scaling = self.service.auto_scale_task_count(min_capacity=api.min_tasks,
                                                     max_capacity=api.max_tasks)
        scaling.scale_on_cpu_utilization(
            "Cpu", target_utilization_percent=api.cpu_target_percent,
            scale_out_cooldown=cdk.Duration.seconds(60),
            scale_in_cooldown=cdk.Duration.seconds(300))
        if api.requests_per_target:
            scaling.scale_on_request_count(
                "Requests", requests_per_target=api.requests_per_target,
                target_group=self.target_group,
                scale_out_cooldown=cdk.Duration.seconds(60),
                scale_in_cooldown=cdk.Duration.seconds(300))
