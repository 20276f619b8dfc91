"""The API's entry point: an ALB, its listeners and its access-log bucket.

`api.internal = false` (default): internet-facing in the public subnets. `api.internal = true`:
internal, in the private subnets, admitting only the VPC's own CIDR (producers inside the
network); no WAF is needed there.

Listeners:
- `api.certificate_arn` set: HTTPS on 443 with that certificate; HTTP 80 redirects to HTTPS.
- no certificate and `api.allow_plain_http = false` (prod): the certificate ARN becomes the
  deploy-time stack parameter `ApiCertificateArn` (no placeholder ARN is ever committed); HTTPS
  on 443 with it; HTTP 80 redirects.
- no certificate and `api.allow_plain_http = true` (dev, staging): plain HTTP on 80 only.

Access logs go to an S3 bucket through the L1 load-balancer attributes rather than
`logAccessLogs`, which refuses an environment-agnostic stack (it needs the region to pick the
ELB account). The bucket policy works in any region: it admits the log-delivery service
principal (regions from August 2022 on) and, through a CloudFormation mapping resolved on
`AWS::Region` when the stack has no region (synth-time lookup when it has), the regional
Elastic Load Balancing account of the older regions.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import region_info
from constructs import Construct

from jobfleet_config.config import DELETION_PROTECTION_CONTROL, HTTPS_REDIRECT_CONTROL, ApiConfig
from stacks.checkov import skip_check
from stacks.constructs.hardened_bucket import BucketExemptions, hardened_bucket
from stacks.guard import suppress
from stacks.nag import acknowledge, acknowledge_report

ACCESS_LOG_PREFIX = "alb"
NONCURRENT_LOG_DAYS = 30
_NO_ACCESS_LOGS = ("This bucket is the ALB access-log destination itself; S3 server access logs of "
                   "a log bucket would only record the log writes, recursively.")
_NO_KMS = ("ALB access logging supports only SSE-S3 (Amazon S3-managed keys) on the destination "
           "bucket; SSE-KMS would make every log delivery fail.")
_ACCESS_LOG_BUCKET_EXEMPTIONS = BucketExemptions(
    nag={"S1": "This bucket is the ALB access-log destination itself; S3 server access logs of a "
               "log bucket would only log the log writes, recursively."},
    checkov={"CKV_AWS_18": _NO_ACCESS_LOGS},
    # Control Tower controls the access-log bucket cannot meet, each with why.
    controls={
        "CT.S3.PR.2": _NO_ACCESS_LOGS,
        "CT.S3.PR.4": "Nothing consumes access-log objects as they arrive (they are read on demand "
                      "with Athena or the console); an event notification would have no target.",
        "CT.S3.PR.9": "Logs expire by lifecycle after api.access_log_expiry_days and the bucket is "
                      "versioned; Object Lock retention would keep dev buckets from being emptied "
                      "on stack deletion and adds nothing the versioning does not.",
        "CT.S3.PR.10": _NO_KMS,
    },
    report={
        "S3BucketLoggingEnabled": _NO_ACCESS_LOGS,
        "S3DefaultEncryptionKMS": _NO_KMS,
        "S3BucketReplicationEnabled": "Access logs are diagnostic records kept "
                                      "api.access_log_expiry_days; a copy in a second region would "
                                      "not make the API more available.",
    },
)
CERTIFICATE_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$"
_NO_ELB_ACCOUNT = "none"


class PublicLoadBalancer(Construct):
    """`listener` is the listener that forwards to the API (HTTPS, or HTTP where allowed).

    `vpc_cidr` is the CIDR `vpc` is created with (admitted by an internal ALB); `waivers` are the
    environment's Control Tower waivers (deletion protection off, plain HTTP) when its `api`
    settings need them; `removal_policy` applies to the access-log bucket.
    """

    def __init__(self, scope: Construct, construct_id: str, *, api: ApiConfig, vpc: ec2.IVpc,
                 vpc_cidr: str, waivers: Mapping[str, str],
                 removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)

        # Versioned, so an overwritten or deleted log object stays recoverable for a while.
        self.access_log_bucket = hardened_bucket(
            self, "AccessLogs",
            expiry_rule_id="expire-access-logs", expiry_days=api.access_log_expiry_days,
            noncurrent_version_days=NONCURRENT_LOG_DAYS,
            removal_policy=removal_policy, exemptions=_ACCESS_LOG_BUCKET_EXEMPTIONS)
        self._allow_log_delivery()

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self, "LoadBalancer",
            vpc=vpc,
            internet_facing=not api.internal,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                                            if api.internal else ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
            deletion_protection=api.deletion_protection,
            idle_timeout=cdk.Duration.seconds(api.idle_timeout_seconds),
        )
        if not api.deletion_protection:
            suppress(self.load_balancer, DELETION_PROTECTION_CONTROL,
                     waivers[DELETION_PROTECTION_CONTROL])
            acknowledge_report(self.load_balancer, "ELBDeletionProtectionEnabled",
                               waivers[DELETION_PROTECTION_CONTROL])
        self.load_balancer.set_attribute("access_logs.s3.enabled", "true")
        self.load_balancer.set_attribute("access_logs.s3.bucket",
                                         self.access_log_bucket.bucket_name)
        self.load_balancer.set_attribute("access_logs.s3.prefix", ACCESS_LOG_PREFIX)
        # The bucket policy must exist before the ALB checks that it may write there.
        policy = self.access_log_bucket.policy
        assert policy is not None
        self.load_balancer.node.add_dependency(policy)
        if not api.internal:
            acknowledge(self.load_balancer, "EC23",
                        "Internet-facing job API: the ALB security group must admit 0.0.0.0/0 on "
                        "its listener ports; tasks behind it admit only the ALB security group.")
        # Internal: nothing outside the VPC may connect; inside it, any producer may.
        open_to_world = not api.internal

        certificate_arn = api.certificate_arn
        self.certificate_parameter: cdk.CfnParameter | None = None
        if not certificate_arn and not api.allow_plain_http:
            self.certificate_parameter = cdk.CfnParameter(
                cdk.Stack.of(self), "ApiCertificateArn",
                type="String",
                allowed_pattern=CERTIFICATE_ARN_PATTERN,
                constraint_description="an ACM certificate ARN in the stack's region",
                description="ACM certificate of the API's HTTPS listener (deploy-time input)",
            )
            certificate_arn = self.certificate_parameter.value_as_string

        self.https = bool(certificate_arn)
        if self.https:
            self.listener = self.load_balancer.add_listener(
                "Https",
                protocol=elbv2.ApplicationProtocol.HTTPS,
                port=443,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                open=open_to_world,
            )
            if self.certificate_parameter is not None:
                suppress(self.listener, "CT.ELASTICLOADBALANCING.PR.2",
                         "The certificate is the ApiCertificateArn stack parameter, whose "
                         "AllowedPattern admits only an ACM certificate ARN; the rule cannot "
                         "resolve a parameter reference.")
            redirect = self.load_balancer.add_redirect(
                source_protocol=elbv2.ApplicationProtocol.HTTP, source_port=80,
                target_protocol=elbv2.ApplicationProtocol.HTTPS, target_port=443, open=open_to_world)
            acknowledge_report(redirect, "ELBv2ACMCertificateRequired",
                               "False positive: port 80 only answers a redirect to HTTPS on 443; no "
                               "request reaches a target over it, and HTTP listeners take no "
                               "certificate.")
        else:
            self.listener = self.load_balancer.add_listener(
                "Http", protocol=elbv2.ApplicationProtocol.HTTP, port=80, open=open_to_world)
            suppress(self.listener, HTTPS_REDIRECT_CONTROL, waivers[HTTPS_REDIRECT_CONTROL])
            for rule in ("ELBv2ACMCertificateRequired", "ALBHttpToHttpsRedirection"):
                acknowledge_report(self, rule, waivers[HTTPS_REDIRECT_CONTROL])
            for check in ("CKV_AWS_2", "CKV_AWS_103"):
                skip_check(self.listener, check,
                           "Plain HTTP only because this environment sets api.allow_plain_http "
                           "and no certificate (dev/staging); HTTPS-only where it is false.")
        (alb_security_group,) = self.load_balancer.connections.security_groups
        if api.internal:
            # The VPC this app creates has exactly `vpc_cidr`; a literal keeps cdk-nag's rules
            # able to read the rule (an imported VPC's CIDR is a literal from the lookup anyway).
            peer_cidr = vpc_cidr if cdk.Token.is_unresolved(vpc.vpc_cidr_block) else vpc.vpc_cidr_block
            for port in (443, 80) if self.https else (80,):
                alb_security_group.add_ingress_rule(ec2.Peer.ipv4(peer_cidr), ec2.Port.tcp(port),
                                                    "producers inside the VPC")
        else:
            skip_check(alb_security_group, "CKV_AWS_260",
                       "Port 80 is open to the internet on the public ALB to redirect to HTTPS (or to "
                       "serve plain HTTP where the environment explicitly allows it).")

    def _allow_log_delivery(self) -> None:
        """Bucket policy admitting ALB log delivery in whatever region the stack deploys to."""
        stack = cdk.Stack.of(self)
        bucket = self.access_log_bucket
        objects = bucket.arn_for_objects(f"{ACCESS_LOG_PREFIX}/AWSLogs/{stack.account}/*")
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="AlbLogDeliveryService",
            principals=[iam.ServicePrincipal("logdelivery.elasticloadbalancing.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[objects],
        ))
        # Regions older than August 2022 deliver as a regional ELB account instead. A region known
        # at synth is looked up here; otherwise every region CDK knows goes into a mapping read on
        # AWS::Region at deploy time, and regions without such an account fall back to this
        # account's own root (which gains no right through it).
        if not cdk.Token.is_unresolved(stack.region):
            elb_account = region_info.RegionInfo.get(stack.region).elbv2_account
            if not elb_account:
                return
        else:
            accounts = {r.name: {"Account": r.elbv2_account or _NO_ELB_ACCOUNT}
                        for r in region_info.RegionInfo.regions}
            mapping = cdk.CfnMapping(self, "ElbLogDeliveryAccount", mapping=accounts)
            account_in_region = mapping.find_in_map(stack.region, "Account")
            condition = cdk.CfnCondition(
                self, "RegionHasElbAccount",
                expression=cdk.Fn.condition_not(
                    cdk.Fn.condition_equals(account_in_region, _NO_ELB_ACCOUNT)))
            elb_account = cdk.Fn.condition_if(condition.logical_id, account_in_region,
                                              stack.account).to_string()
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="AlbLogDeliveryRegionalAccount",
            principals=[iam.ArnPrincipal(f"arn:{stack.partition}:iam::{elb_account}:root")],
            actions=["s3:PutObject"],
            resources=[objects],
        ))
