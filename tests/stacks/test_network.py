"""Network stack: two AZs, public + private-with-egress subnets, NAT per environment, flow logs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template


@pytest.fixture(scope="module")
def templates(stages):
    return {name: Template.from_stack(stage.network) for name, stage in stages.items()}


@pytest.mark.parametrize(("env", "nats"), [("dev", 1), ("staging", 1), ("prod", 2)])
def test_nat_gateways_per_environment(templates, env, nats):
    templates[env].resource_count_is("AWS::EC2::NatGateway", nats)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_two_azs_with_public_and_private_subnets(templates, env):
    subnets = templates[env].find_resources("AWS::EC2::Subnet")
    public = [s for s in subnets.values() if subnet_type(s) == "Public"]
    private = [s for s in subnets.values() if subnet_type(s) == "Private"]
    assert len(public) == 2 and len(private) == 2
    # Only the ALB and the NAT gateways (Elastic IPs) are public: no subnet hands out public IPs.
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    # Private subnets route to the internet only through a NAT gateway.
    routes = templates[env].find_resources("AWS::EC2::Route")
    assert sum("NatGatewayId" in r["Properties"] for r in routes.values()) == 2


def subnet_type(subnet: dict) -> str:
    """CDK's `aws-cdk:subnet-type` tag: Public or Private."""
    return next(t["Value"] for t in subnet["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type")


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_flow_logs_with_retention(templates, stages, env):
    templates[env].has_resource_properties("AWS::EC2::FlowLog", {
        "ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
    templates[env].has_resource_properties("AWS::Logs::LogGroup", {
        "RetentionInDays": stages[env].config.network.flow_log_retention_days})


def test_vpc_cidr_from_config(templates, stages):
    templates["dev"].has_resource_properties("AWS::EC2::VPC", {
        "CidrBlock": stages["dev"].config.network.cidr, "EnableDnsHostnames": True})


def test_default_security_group_is_restricted(templates):
    templates["prod"].has_resource("Custom::VpcRestrictDefaultSG", Match.any_value())
