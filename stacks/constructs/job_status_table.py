"""DynamoDB table holding each job's status (queued, running, succeeded, failed, dead-lettered)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.checkov import skip_check


class JobStatusTable(Construct):
    """On-demand table keyed by jobId; records expire through TTL on `expiresAt`."""

    def __init__(self, scope: Construct, construct_id: str, *, table_name: str,
                 removal_policy: cdk.RemovalPolicy, point_in_time_recovery: bool,
                 key: kms.IKey | None) -> None:
        super().__init__(scope, construct_id)
        encryption = (dynamodb.TableEncryptionV2.customer_managed_key(key) if key
                      else dynamodb.TableEncryptionV2.aws_managed_key())
        self.table = dynamodb.TableV2(
            self, "Table",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name="jobId", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery),
            encryption=encryption,
            removal_policy=removal_policy,
            deletion_protection=removal_policy == cdk.RemovalPolicy.RETAIN,
        )
        if not point_in_time_recovery:
            skip_check(self.table, "CKV_AWS_165", "Point-in-time recovery follows app.removal_policy: "
                       "on for retained (production) tables, off for disposable dev/staging ones")


def grant_status_access(table: dynamodb.ITableV2, grantee: iam.IGrantable, *actions: str) -> None:
    """`actions` on the table, plus its customer-managed key if it has one (TableV2.grant
    leaves the key out)."""
    table.grant(grantee, *actions)
    if table.encryption_key is not None:
        table.encryption_key.grant(grantee, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
