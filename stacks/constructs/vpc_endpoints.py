"""Private VPC endpoints: AWS API traffic of the tasks stays in the VPC instead of crossing NAT.

Gateway endpoints (S3, which also serves ECR image layers, and DynamoDB) are free; interface
endpoints (SQS, ECR API, ECR Docker registry, CloudWatch Logs) cost per AZ and hour, so they pay
off only with enough traffic: `python -m jobfleet_tools cost` shows the trade-off per environment.
The NAT gateways stay: job handlers call external APIs. Construct IDs ("SecurityGroup", "S3",
"DynamoDb", "Sqs", "EcrApi", "EcrDocker", "Logs") are frozen.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

# Kept in step with jobfleet_tools.capacity.cost.INTERFACE_ENDPOINTS by a template test.
INTERFACE_ENDPOINTS = {
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
}
GATEWAY_ENDPOINTS = {
    "S3": ec2.GatewayVpcEndpointAwsService.S3,
    "DynamoDb": ec2.GatewayVpcEndpointAwsService.DYNAMODB,
}


class VpcEndpoints(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.Vpc, cidr: str) -> None:
        super().__init__(scope, construct_id)
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        # HTTPS from inside the VPC only; the endpoints start no connection of their own. The
        # configured CIDR, not the VPC's CidrBlock token, so that the rule is checkable at synth.
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="VPC interface endpoints: HTTPS from inside the VPC")
        self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443),
                                             "HTTPS from the VPC")
        self.gateways = {name: ec2.GatewayVpcEndpoint(self, name, vpc=vpc, service=service,
                                                      subnets=[private])
                         for name, service in GATEWAY_ENDPOINTS.items()}
        self.interfaces = {
            name: ec2.InterfaceVpcEndpoint(self, name, vpc=vpc, service=service, subnets=private,
                                           private_dns_enabled=True,
                                           security_groups=[self.security_group], open=False)
            for name, service in INTERFACE_ENDPOINTS.items()}
