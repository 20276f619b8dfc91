"""Network: a VPC with public subnets (ALB, NAT) and private subnets with egress (everything else),
plus, with `network.vpc_endpoints`, private endpoints for the AWS APIs the tasks use."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from stacks.constructs.vpc_endpoints import VpcEndpoints
from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge_report


class NetworkStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        net = config.network
        if net.vpc_id:
            # Needs account and region (checked by the config); cached in cdk.context.json.
            self.vpc: ec2.IVpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=net.vpc_id)
            return
        vpc = ec2.Vpc(
            self, "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(net.cidr),
            max_azs=net.max_azs,
            nat_gateways=net.nat_gateways,
            subnet_configuration=[
                # Only the ALB and the NAT gateways (Elastic IPs) live here: nothing launched in
                # these subnets needs an automatic public IP.
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC,
                                        cidr_mask=24, map_public_ip_on_launch=False),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=22),
            ],
        )
        acknowledge_report(vpc, "VPCNoUnrestrictedRouteToIGW",
                           "Only the public subnets route 0.0.0.0/0 to the internet gateway: they "
                           "hold the internet-facing ALB and the NAT gateways; every task is private.")
        flow_log_settings = LogSettings.of(config).with_retention(net.flow_log_retention_days)
        flow_logs = project_log_group(self, "FlowLogs", settings=flow_log_settings,
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                         traffic_type=ec2.FlowLogTrafficType.ALL)
        self.vpc = vpc
        self.endpoints = (VpcEndpoints(self, "Endpoints", vpc=vpc, cidr=net.cidr)
                          if net.vpc_endpoints else None)
