"""Compute: the ECS cluster, the ALB + job API service, and one worker service per service tier.

Stateless: everything here can be replaced without touching a queue (those live in Stateful).
Attributes read by other stacks (operations): `cluster`, `load_balancer`, `api_service`,
`api_target_group`, `worker_services` (tier name -> FargateService).

Construct IDs are frozen once released (renaming one replaces the resource): "Cluster",
"WorkerImage", "Workers-<tier>", "Scaling-<tier>", "Ingress" (ALB, listeners, access-log bucket),
"Api"; the stack parameter "ApiCertificateArn" exists where HTTPS has no configured certificate.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.constructs.api_access import ApiFirewall, TokenIssuer, api_auth
from stacks.constructs.api_service import ApiService
from stacks.constructs.backlog_scaling import BacklogScaling
from stacks.constructs.cluster import JobCluster
from stacks.constructs.load_balancer import PublicLoadBalancer
from stacks.constructs.team_workload import JobCompletion, container_image
from stacks.constructs.tier_queue import TierQueue
from stacks.constructs.worker_service import WorkerService
from stacks.logs import LogSettings
from stacks.retention import removal_policy


class ComputeStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 vpc: ec2.IVpc, tier_queues: dict[str, TierQueue],
                 status_table: dynamodb.ITableV2,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        naming = config.naming
        logs = LogSettings.of(config)
        completion = JobCompletion.of(config)

        job_cluster = JobCluster(self, "Cluster", vpc=vpc)
        self.cluster: ecs.Cluster = job_cluster.cluster

        self.worker_services: dict[str, ecs.FargateService] = {}
        self.worker_scaling: dict[str, BacklogScaling] = {}
        for tier in config.service_tiers:
            worker = WorkerService(
                self, f"Workers-{tier.name}", tier=tier, naming=naming, logs=logs,
                thresholds=config.alarms, job_types=config.tier_job_types(tier),
                job_settings=config.tier_job_settings(tier), status_ttl_days=config.status.ttl_days,
                completion=completion, tier_queue=tier_queues[tier.name], cluster=self.cluster,
                image=container_image(self, tier.image, tier.architecture,
                                      worker_image=config.worker_image),
                status_table=status_table)
            worker.service.node.add_dependency(job_cluster.capacity_providers)
            self.worker_services[tier.name] = worker.service
            self.worker_scaling[tier.name] = BacklogScaling(
                self, f"Scaling-{tier.name}", naming=naming, tier=tier, service=worker.service,
                cluster=self.cluster, queue=tier_queues[tier.name].queue)

        entry = PublicLoadBalancer(self, "Ingress", api=config.api, vpc=vpc,
                                   vpc_cidr=config.network.cidr, waivers=config.guard.waivers,
                                   removal_policy=removal_policy(config.app))
        self.load_balancer = entry.load_balancer
        self.access_log_bucket = entry.access_log_bucket
        api_image = container_image(self, config.api.image, config.api.architecture,
                                    worker_image=config.worker_image)
        self.token_issuer = (TokenIssuer(self, "Auth", audience=config.auth_audience,
                                         domain_prefix=config.resource_name("jobs"),
                                         removal_policy=removal_policy(config.app))
                             if config.auth.provisions_issuer else None)
        if config.api.waf and not config.api.internal:
            ApiFirewall(self, "Firewall", name=config.resource_name("api"),
                        requests_per_ip=config.api.waf_requests_per_ip, logs=logs,
                        load_balancer=self.load_balancer)
        if config.api_is_open:
            # Allowed outside prod only (the config refuses it there); say so on every synth.
            cdk.Annotations.of(self).add_warning_v2(
                "jobfleet:open-api",
                f"{config.name}: the job API is OPEN: anyone who reaches its internet-facing ALB may "
                "submit and read jobs (auth.mode = \"none\"); set auth.mode = \"jwt\" or api.internal")
        # Tiers that scale to zero: the API starts their first task when a job arrives.
        wake_services = ({tier.name: self.worker_services[tier.name] for tier in config.service_tiers
                          if tier.min_tasks == 0} if config.api.wake_from_zero else {})
        api = ApiService(self, "Api", api=config.api, naming=naming, logs=logs,
                         thresholds=config.alarms, job_types=config.job_types,
                         tier_max_payload_bytes=config.tier_payload_limits(),
                         status_ttl_days=config.status.ttl_days, results=config.results,
                         cluster=self.cluster, listener=entry.listener,
                         image=api_image, tier_queues=tier_queues, status_table=status_table,
                         auth=api_auth(config.auth, config.auth_audience,
                                       self.token_issuer.issuer_url if self.token_issuer else None),
                         wake_services=wake_services)
        api.service.node.add_dependency(job_cluster.capacity_providers)
        self.api_service = api.service
        self.api_target_group = api.target_group

        cdk.CfnOutput(self, "ApiUrl", description="Base URL of the job API",
                      value=f"{'https' if entry.https else 'http'}://"
                            f"{self.load_balancer.load_balancer_dns_name}")
        cdk.CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        if self.token_issuer is not None:
            cdk.CfnOutput(self, "TokenUrl", description="OAuth2 token endpoint (client credentials)",
                          value=self.token_issuer.token_url)
            cdk.CfnOutput(self, "ProducerClientId", description="App client with the submit and read scopes",
                          value=self.token_issuer.client.user_pool_client_id)
