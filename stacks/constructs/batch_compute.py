"""Compute behind the batch tier: Spot first, on-demand fallback second, in private subnets.

`ec2-spot`: a managed EC2 compute environment on Spot (SPOT_PRICE_CAPACITY_OPTIMIZED) and, when
`batch.on_demand_fallback`, an on-demand one. Both launch from a template that requires IMDSv2
(hop limit 1, so containers cannot borrow the instance role) and encrypts the root volume.
`fargate-spot`: a Fargate Spot compute environment and, with the fallback, a Fargate one.

Job queues order the environments with `ordered_environments()`: Spot at order 1, the fallback at
order 2. Construct IDs ("SecurityGroup", "LaunchTemplate", "Spot", "OnDemand", "FargateSpot",
"Fargate") are frozen: renaming one replaces the compute environment.
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from jobfleet_config.config import BatchConfig
from stacks.nag import acknowledge

# Root volume of the ECS-optimized AMI (its snapshot is 30 GiB); room for job scratch data.
ROOT_VOLUME_GIB = 50
ROOT_DEVICE = "/dev/xvda"
# IMDS answers only the instance itself, never a container behind the Docker bridge.
IMDS_HOP_LIMIT = 1
ECS_INSTANCE_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"


class BatchCompute(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: BatchConfig,
                 vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        # Jobs only call out (SQS, DynamoDB, ECR, the APIs handlers use); nothing calls in.
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
            description="JobFleet batch jobs: egress only")
        self.spot: batch.IComputeEnvironment
        self.on_demand: batch.IComputeEnvironment | None = None
        if config.compute == "fargate-spot":
            self.spot = batch.FargateComputeEnvironment(
                self, "FargateSpot", vpc=vpc, vpc_subnets=subnets, spot=True,
                maxv_cpus=config.max_vcpus, security_groups=[self.security_group])
            if config.on_demand_fallback:
                self.on_demand = batch.FargateComputeEnvironment(
                    self, "Fargate", vpc=vpc, vpc_subnets=subnets, spot=False,
                    maxv_cpus=config.on_demand_max_vcpus, security_groups=[self.security_group])
            return

        self.launch_template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            require_imdsv2=True,
            # IMDSv2 alone does not stop containers: the AL2023 ECS AMI defaults the hop limit
            # to 2, which lets a job container (one hop further) reach the instance role.
            http_put_response_hop_limit=IMDS_HOP_LIMIT,
            # One-minute instance metrics: Spot hosts live minutes to hours.
            detailed_monitoring=True,
            block_devices=[ec2.BlockDevice(
                device_name=ROOT_DEVICE,
                volume=ec2.BlockDeviceVolume.ebs(
                    ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3,
                    delete_on_termination=True))],
        )
        common = {
            "vpc": vpc, "vpc_subnets": subnets, "security_groups": [self.security_group],
            "launch_template": self.launch_template,
            "use_optimal_instance_classes": False, "minv_cpus": 0, **_instance_props(config),
            "update_to_latest_image_version": True,
        }
        self.spot = batch.ManagedEc2EcsComputeEnvironment(
            self, "Spot", spot=True,
            allocation_strategy=batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED,
            maxv_cpus=config.max_vcpus, **common)
        if config.on_demand_fallback:
            self.on_demand = batch.ManagedEc2EcsComputeEnvironment(
                self, "OnDemand", spot=False,
                allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
                maxv_cpus=config.on_demand_max_vcpus, **common)
        for environment in (self.spot, self.on_demand):
            if environment is not None:
                # Config entries are classes ("m6i") or types ("m6i.2xlarge"), as Batch takes them;
                # the L2 only knows the classes in its enum, so the list goes to the L1 verbatim.
                cfn = cast(batch.CfnComputeEnvironment, environment.node.default_child)
                cfn.add_property_override("ComputeResources.InstanceTypes",
                                          list(config.instance_classes))
                acknowledge(environment, f"IAM4[Policy::{ECS_INSTANCE_POLICY}]",
                            "The Batch instance role needs AmazonEC2ContainerServiceforEC2Role "
                            "(ECS agent registration, ECR pulls, log delivery); AWS maintains it "
                            "as new ECS agent features need new actions.")

    def ordered_environments(self) -> list[batch.OrderedComputeEnvironment]:
        """Spot at order 1; the on-demand fallback, if any, at order 2."""
        ordered = [batch.OrderedComputeEnvironment(compute_environment=self.spot, order=1)]
        if self.on_demand is not None:
            ordered.append(batch.OrderedComputeEnvironment(compute_environment=self.on_demand,
                                                           order=2))
        return ordered


def _instance_props(config: BatchConfig) -> dict:
    """What the L2 can model of `batch.instance_classes` (it checks architectures with it).

    The CloudFormation list is then overridden with the config's entries verbatim.
    """
    classes, types = [], []
    for name in config.instance_classes:
        if "." in name:
            types.append(ec2.InstanceType(name))
        elif name.upper() in ec2.InstanceClass.__members__:
            classes.append(ec2.InstanceClass[name.upper()])
    if not classes and not types:
        raise ValueError(f"batch.instance_classes = {list(config.instance_classes)}: at least one "
                         "EC2 instance class or type that aws-cdk-lib knows (e.g. m6i, c7g.xlarge)")
    return {"instance_classes": classes, "instance_types": types}


def runnable_time_limits(seconds: int) -> list[batch.JobStateTimeLimitAction]:
    """Cancel a job stuck RUNNABLE for `seconds` for any reason Batch reports; it then fails."""
    reasons = (batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
               batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
               batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE)
    return [batch.JobStateTimeLimitAction(
        max_time=cdk.Duration.seconds(seconds), reason=reason,
        action=batch.JobStateTimeLimitActionsAction.CANCEL,
        state=batch.JobStateTimeLimitActionsState.RUNNABLE) for reason in reasons]
