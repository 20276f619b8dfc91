"""The environment's results bucket: job results as `results/<jobId>.json` (config `[results]`).

A hardened bucket (stacks/constructs/hardened_bucket.py: SSE-S3, TLS-only, public access blocked,
owner-enforced); results expire by lifecycle after `results.expiry_days`. Workers and Batch jobs may
put results, the API may read them; nothing else.
Construct ID "Results" (in the Stateful stack) is frozen.

The bucket's name is derived from the configuration and the stack's account and region
(`<app>-<env>-results-<account>-<region>`), so the stacks that use it name it without a cross-stack
export, and the IAM grants on `results/*` read the same in every template.
"""

from __future__ import annotations

import dataclasses

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from jobfleet_config.config import ResultsConfig
from jobfleet_config.naming import Naming
from stacks.constructs.hardened_bucket import BucketExemptions, hardened_bucket
from stacks.nag import acknowledge

RESULTS_PREFIX = "results/"
_NO_ACCESS_LOGS = ("Results are written only by the workers' task roles and read through the job API; the "
                   "status table and job events record every write, so S3 server access logs would "
                   "duplicate that trail.")
_NO_KMS = ("Results are handed out as presigned URLs (GET /jobs/{id}); SSE-S3 keeps those URLs usable "
           "by any caller the API gives one to, which SSE-KMS would tie to the key policy.")
_NO_VERSIONING = ("Each result is written once under its jobId and expires by lifecycle; versioning would "
                  "keep expired results as noncurrent versions past results.expiry_days.")
_EXEMPTIONS = BucketExemptions(
    nag={"S1": _NO_ACCESS_LOGS},
    checkov={
        "CKV_AWS_18": "Results are written only by the workers' task roles and read through the job "
                      "API; the status table and job events already record every write.",
        "CKV_AWS_21": _NO_VERSIONING,
    },
    # Control Tower controls the results bucket does not meet, each with why.
    controls={
        "CT.S3.PR.2": _NO_ACCESS_LOGS,
        "CT.S3.PR.4": "Results are announced by the Job State Change event the worker publishes once "
                      "the status write is done; an S3 event notification would announce them a "
                      "second time.",
        "CT.S3.PR.9": "Results are transient by design and expire after results.expiry_days; Object "
                      "Lock retention would keep them (and dev buckets) from being deleted as "
                      "configured.",
        "CT.S3.PR.10": _NO_KMS,
        "CT.S3.PR.11": _NO_VERSIONING,
    },
    report={
        "S3BucketLoggingEnabled": _NO_ACCESS_LOGS,
        "S3DefaultEncryptionKMS": _NO_KMS,
        "S3BucketVersioningEnabled": _NO_VERSIONING,
        "S3BucketReplicationEnabled": "Results are transient (results.expiry_days) and can be "
                                      "recomputed by running the job again; a copy in a second "
                                      "region would not make the API more available.",
    },
)


@dataclasses.dataclass(frozen=True)
class ResultsBucketName:
    """The results bucket's name: `<base>-<account>-<region>`, `base` being `<app>-<env>-results`."""

    base: str

    @classmethod
    def of(cls, naming: Naming, results: ResultsConfig) -> ResultsBucketName | None:
        """The environment's results bucket, None when `[results]` is disabled."""
        return cls(naming.resource_name("results")) if results.enabled else None

    def in_stack(self) -> str:
        """The name in the stack being built (its account and region pseudo parameters)."""
        return f"{self.base}-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}"

    def nag_evidence(self) -> str:
        """The name as cdk-nag prints it in a finding."""
        return f"{self.base}-<AWS::AccountId>-<AWS::Region>"


class ResultsBucket(Construct):
    """Results expire `expiry_days` after they are written; `removal_policy` DESTROY empties the
    bucket on stack deletion."""

    def __init__(self, scope: Construct, construct_id: str, *, name: ResultsBucketName,
                 expiry_days: int, removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bucket = hardened_bucket(
            self, "Bucket", bucket_name=name.in_stack(),
            expiry_rule_id="expire-results", expiry_prefix=RESULTS_PREFIX, expiry_days=expiry_days,
            removal_policy=removal_policy, exemptions=_EXEMPTIONS)


def grant_results(bucket: ResultsBucketName | None, role: iam.IRole, action: str,
                  scope: Construct) -> None:
    """`action` (s3:PutObject or s3:GetObject) on results/* only, as a policy of its own so that its
    acknowledged object wildcard covers nothing else. Nothing when results are disabled (None)."""
    if bucket is None:
        return
    objects = f"arn:{cdk.Aws.PARTITION}:s3:::{bucket.in_stack()}/{RESULTS_PREFIX}*"
    policy = iam.Policy(scope, "ResultsAccess", roles=[role], statements=[
        iam.PolicyStatement(actions=[action], resources=[objects])])
    evidence = f"arn:<AWS::Partition>:s3:::{bucket.nag_evidence()}/{RESULTS_PREFIX}*"
    acknowledge(policy, f"IAM5[Resource::{evidence}]",
                f"{action} on results/* of the results bucket only: result keys are results/<jobId>.json "
                "and job ids are not known at deploy time.")
