"""checkov skips written next to the resource (CloudFormation Metadata), each with its reason.

checkov reads `Metadata.checkov.skip[{id, comment}]` on a resource. `skip_check` is the only way
this project skips a check; tests/stacks/test_checkov.py fails on any skip without a comment and
on any unskipped failure.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON_CHARS = 40


def skip_check(scope: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov `check_id` on `scope` (a CfnResource, or an L2 whose default child is one)."""
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"checkov skip of {check_id} on {scope.node.path} needs a specific reason "
                         f"of at least {MIN_REASON_CHARS} characters, got {reason!r}")
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource to carry a checkov skip")
    existing = resource.get_metadata("checkov") or {"skip": []}
    skips = [s for s in existing["skip"] if s["id"] != check_id]
    skips.append({"id": check_id, "comment": reason.strip()})
    resource.add_metadata("checkov", {"skip": skips})


# aws-cdk-lib's singleton custom-resource provider functions (e.g. the one that locks down the
# VPC's default security group) are short-lived deployment helpers outside our control.
_CDK_PROVIDER_SKIPS = {
    "CKV_AWS_115": "aws-cdk-lib custom-resource provider: runs only during deployments, a "
                   "concurrency limit would only slow stack updates",
    "CKV_AWS_116": "aws-cdk-lib custom-resource provider: CloudFormation retries it and reports "
                   "its failure; there is no asynchronous event to dead-letter",
    "CKV_AWS_117": "aws-cdk-lib custom-resource provider: calls only AWS control-plane APIs, no "
                   "private resources to reach from inside the VPC",
}

_LOG_GROUP_KMS_REASON = (
    "CloudWatch Logs encrypts every log group at rest with service-managed AES-256 keys; these "
    "groups hold job ids, types, outcomes and error types, never payloads or secrets")


def apply_project_wide_skips(scope: IConstruct) -> None:
    """Skips that hold for a whole kind of resource; call once on a finished stage.

    A plain walk from Python rather than an Aspect: an Aspect calls back from Node into Python for
    every construct of the tree, which cost ~2 s of each synth.
    """
    for node in scope.node.find_all():
        if not isinstance(node, CfnResource):
            continue
        resource_type = node.cfn_resource_type
        if resource_type == "AWS::Lambda::Function" and "CustomResourceProvider" in node.node.path:
            for check_id, reason in _CDK_PROVIDER_SKIPS.items():
                skip_check(node, check_id, reason)
        elif resource_type == "AWS::Logs::LogGroup":
            skip_check(node, "CKV_AWS_158", _LOG_GROUP_KMS_REASON)
