"""The ECS cluster of one environment: Container Insights on, Fargate and Fargate Spot available."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from jobfleet_config.config import TierConfig

CONTAINER_INSIGHTS = "ECS/ContainerInsights"


class JobCluster(Construct):
    """Cluster with Container Insights: its `RunningTaskCount` / `DesiredTaskCount` per service
    (namespace ECS/ContainerInsights) are the denominators of the worker scaling policies."""

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.Cluster(
            self, "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        # Declared here rather than with enableFargateCapacityProviders(), which creates the
        # association lazily, so that services can depend on it: a service whose capacity
        # provider strategy names FARGATE_SPOT fails to create before the association exists.
        self.capacity_providers = ecs.CfnClusterCapacityProviderAssociations(
            self, "CapacityProviders",
            cluster=self.cluster.cluster_name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy=[
                ecs.CfnClusterCapacityProviderAssociations.CapacityProviderStrategyProperty(
                    capacity_provider="FARGATE", weight=1)],
        )


def capacity_provider_strategy(tier: TierConfig) -> list[ecs.CapacityProviderStrategy]:
    """FARGATE only, or FARGATE base 1 + FARGATE_SPOT weight N.

    Always a capacity provider strategy, never a launch type: moving a service from a launch
    type to a strategy replaces it, so turning Spot on later must stay an in-place update.
    The base of 1 on-demand task keeps one worker of the tier out of Spot reclamation; above
    it, tasks split 1 : N between FARGATE and FARGATE_SPOT.
    """
    if tier.fargate_spot_weight == 0:
        return [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]
    return [
        ecs.CapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1),
        ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT",
                                     weight=tier.fargate_spot_weight),
    ]


def container_insights_metric(metric_name: str, service: ecs.FargateService, cluster: ecs.ICluster,
                              statistic: str = "Average") -> cloudwatch.Metric:
    """One service's Container Insights metric (e.g. RunningTaskCount), per minute."""
    return cloudwatch.Metric(
        namespace=CONTAINER_INSIGHTS, metric_name=metric_name,
        dimensions_map={"ClusterName": cluster.cluster_name, "ServiceName": service.service_name},
        statistic=statistic, period=cdk.Duration.minutes(1))
