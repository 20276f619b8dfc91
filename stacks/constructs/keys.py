"""Customer-managed KMS keys: the key-policy statement every key carries, and per-stack log keys.

Control Tower's CT.KMS.PR.3: a key policy must deny `kms:CreateGrant` unless the grant is for an
AWS resource and requested by an AWS service (DynamoDB, for example, creates its grants that way);
otherwise anyone allowed CreateGrant could hand the key to any principal.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

LOG_KEY_ID = "LogKey"  # construct ID at the root of each stack (frozen)
_LOG_KEY_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                    "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]


def deny_grants_except_for_aws_resources(key: kms.Key) -> None:
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="DenyGrantsExceptForAwsResources",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=["kms:CreateGrant"],
        resources=["*"],  # in a key policy, "*" means this key
        conditions={"BoolIfExists": {"kms:GrantIsForAWSResource": "false",
                                     "aws:PrincipalIsAWSService": "false"}},
    ))


def stack_log_key(scope: Construct, *, removal_policy: cdk.RemovalPolicy) -> kms.IKey:
    """The key of every log group in `scope`'s stack (`app.log_encryption = "kms"`), made on first use.

    One key per stack rather than one per environment: Control Tower's CT.CLOUDWATCH.PR.3 accepts
    a literal ARN or a reference to a key in the same template, not a cross-stack reference.
    """
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child(LOG_KEY_ID)
    if isinstance(existing, kms.Key):
        return existing
    key = kms.Key(
        stack, LOG_KEY_ID,
        description=f"{stack.stack_name}: encrypts this stack's CloudWatch log groups",
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="CloudWatchLogsOfThisAccount",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        actions=_LOG_KEY_ACTIONS,
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
            service="logs", resource="log-group", resource_name="*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}},
    ))
    deny_grants_except_for_aws_resources(key)
    return key
