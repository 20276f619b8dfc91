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


# --- VPC endpoints (network.vpc_endpoints; on in prod) ---------------------------------------

def _endpoints(template: Template, kind: str) -> list[dict]:
    return [r["Properties"] for r in template.find_resources("AWS::EC2::VPCEndpoint").values()
            if r["Properties"].get("VpcEndpointType", "Gateway") == kind]


def _service(props: dict) -> str:
    """The service part of `com.amazonaws.<region>.<service>` (a string, or a Join without region)."""
    name = props["ServiceName"]
    if isinstance(name, dict):
        return name["Fn::Join"][1][-1].lstrip(".")
    return ".".join(name.split(".")[3:])


@pytest.mark.parametrize(("env", "enabled"), [("dev", False), ("staging", False), ("prod", True)])
def test_vpc_endpoints_follow_config(templates, stages, env, enabled):
    assert stages[env].config.network.vpc_endpoints is enabled
    count = len(templates[env].find_resources("AWS::EC2::VPCEndpoint"))
    assert count == (6 if enabled else 0)


def test_interface_endpoints_private_dns_in_private_subnets_https_from_vpc_only(templates, stages):
    from jobfleet_tools.capacity.cost import INTERFACE_ENDPOINTS

    template = templates["prod"]
    interfaces = _endpoints(template, "Interface")
    services = sorted(_service(p) for p in interfaces)
    assert services == ["ecr.api", "ecr.dkr", "logs", "sqs"]
    assert len(interfaces) == INTERFACE_ENDPOINTS  # what the cost estimate prices
    azs = stages["prod"].config.network.max_azs
    private_subnets = {k for k, s in template.find_resources("AWS::EC2::Subnet").items()
                       if subnet_type(s) == "Private"}
    for props in interfaces:
        assert props["PrivateDnsEnabled"] is True
        assert len(props["SubnetIds"]) == azs
        assert {ref["Ref"] for ref in props["SubnetIds"]} == private_subnets
    groups = [g["Properties"] for g in template.find_resources("AWS::EC2::SecurityGroup").values()
              if "endpoints" in g["Properties"]["GroupDescription"]]
    assert len(groups) == 1
    ingress = groups[0]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"], r["IpProtocol"]) for r in ingress] == [(443, 443, "tcp")]
    assert ingress[0]["CidrIp"] == stages["prod"].config.network.cidr


def test_gateway_endpoints_for_s3_and_dynamodb_on_private_route_tables(templates):
    gateways = _endpoints(templates["prod"], "Gateway")
    assert sorted(_service(p) for p in gateways) == ["dynamodb", "s3"]
    for props in gateways:
        assert len(props["RouteTableIds"]) == 2
