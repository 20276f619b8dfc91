"""The one recipe of every S3 bucket JobFleet creates (job results, ALB access logs).

SSE-S3 encryption, a TLS-only bucket policy, all public access blocked, owner-enforced object
ownership (no ACLs), one lifecycle rule that expires objects and aborts incomplete multipart uploads
after a day, and the configured removal policy (DESTROY also empties the bucket, so that stack
deletion succeeds). Versioning only together with an expiry of noncurrent versions, so that
overwritten and deleted objects do not pile up. What a bucket does not meet, it says with why
(`BucketExemptions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.checkov import skip_check
from stacks.guard import suppress
from stacks.nag import acknowledge, acknowledge_report

MULTIPART_UPLOAD_DAYS = 1


@dataclasses.dataclass(frozen=True)
class BucketExemptions:
    """The checks a bucket does not meet, check -> why, per tool: cdk-nag's AwsSolutions rules,
    checkov checks, Control Tower controls (cfn-guard) and cdk-nag's report-pack rules."""

    nag: Mapping[str, str]
    checkov: Mapping[str, str]
    controls: Mapping[str, str]
    report: Mapping[str, str]


def hardened_bucket(scope: Construct, construct_id: str, *, expiry_rule_id: str, expiry_days: int,
                    removal_policy: cdk.RemovalPolicy, exemptions: BucketExemptions,
                    bucket_name: str | None = None, expiry_prefix: str | None = None,
                    noncurrent_version_days: int | None = None) -> s3.Bucket:
    """A bucket whose objects (under `expiry_prefix`, or all) expire after `expiry_days`;
    versioned when `noncurrent_version_days` is given, noncurrent versions expiring after that."""
    bucket = s3.Bucket(
        scope, construct_id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        # Unset (CDK's default, unversioned) rather than False: the construct metadata stays as it was.
        versioned=True if noncurrent_version_days is not None else None,
        lifecycle_rules=[s3.LifecycleRule(
            id=expiry_rule_id,
            prefix=expiry_prefix,
            expiration=cdk.Duration.days(expiry_days),
            noncurrent_version_expiration=(cdk.Duration.days(noncurrent_version_days)
                                           if noncurrent_version_days is not None else None),
            abort_incomplete_multipart_upload_after=cdk.Duration.days(MULTIPART_UPLOAD_DAYS),
        )],
        removal_policy=removal_policy,
        auto_delete_objects=removal_policy == cdk.RemovalPolicy.DESTROY,
    )
    for rule, reason in exemptions.nag.items():
        acknowledge(bucket, rule, reason)
    for check, reason in exemptions.checkov.items():
        skip_check(bucket, check, reason)
    for control, reason in exemptions.controls.items():
        suppress(bucket, control, reason)
    for rule, reason in exemptions.report.items():
        acknowledge_report(bucket, rule, reason)
    return bucket
