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
from stacks.constructs.hardened_container import worker_image_asset
from stacks.constructs.load_balancer import PublicLoadBalancer
from stacks.constructs.tier_queue import TierQueue
from stacks.constructs.worker_service import WorkerService


class ComputeStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 vpc: ec2.IVpc, tier_queues: dict[str, TierQueue],
                 status_table: dynamodb.ITableV2, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        job_cluster = JobCluster(self, "Cluster", vpc=vpc)
        self.cluster: ecs.Cluster = job_cluster.cluster
        worker_image = ecs.ContainerImage.from_docker_image_asset(
            worker_image_asset(self, "WorkerImage"))

        self.worker_services: dict[str, ecs.FargateService] = {}
        self.worker_scaling: dict[str, BacklogScaling] = {}
        for tier in config.service_tiers:
            worker = WorkerService(
                self, f"Workers-{tier.name}", config=config, tier=tier,
                tier_queue=tier_queues[tier.name], cluster=self.cluster, image=worker_image,
                status_table=status_table)
            worker.service.node.add_dependency(job_cluster.capacity_providers)
            self.worker_services[tier.name] = worker.service
            self.worker_scaling[tier.name] = BacklogScaling(
                self, f"Scaling-{tier.name}", config=config, tier=tier, service=worker.service,
                cluster=self.cluster, queue=tier_queues[tier.name].queue)

        entry = PublicLoadBalancer(self, "Ingress", config=config, vpc=vpc)
        self.load_balancer = entry.load_balancer
        self.access_log_bucket = entry.access_log_bucket
        api_image = (ecs.ContainerImage.from_registry(config.api.image) if config.api.image
                     else worker_image)
        self.token_issuer = (TokenIssuer(self, "Auth", config=config) if config.auth.provisions_issuer
                             else None)
        if config.api.waf and not config.api.internal:
            ApiFirewall(self, "Firewall", config=config, load_balancer=self.load_balancer)
        if config.api_is_open:
            # Allowed outside prod only (the config refuses it there); say so on every synth.
            cdk.Annotations.of(self).add_warning_v2(
                "jobfleet:open-api",
                f"{config.name}: the job API is OPEN: anyone who reaches its internet-facing ALB may "
                "submit and read jobs (auth.mode = \"none\"); set auth.mode = \"jwt\" or api.internal")
        # Tiers that scale to zero: the API starts their first task when a job arrives.
        wake_services = ({tier.name: self.worker_services[tier.name] for tier in config.service_tiers
                          if tier.min_tasks == 0} if config.api.wake_from_zero else {})
        api = ApiService(self, "Api", config=config, cluster=self.cluster, listener=entry.listener,
                         image=api_image, tier_queues=tier_queues, status_table=status_table,
                         auth=api_auth(config, self.token_issuer.issuer_url if self.token_issuer else None),
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
