"""checkov skips written next to the resource (CloudFormation Metadata), each with its reason.

checkov reads `Metadata.checkov.skip[{id, comment}]` on a resource. `skip_check` is the only way
this project skips a check; tests/stacks/test_checkov.py fails on any skip without a comment and
on any unskipped failure.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from constructs import IConstruct

from stacks.guard import suppress
from stacks.reasons import cfn_resource, specific_reason


def skip_check(scope: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov `check_id` on `scope` (a CfnResource, or an L2 whose default child is one)."""
    reason = specific_reason(f"checkov skip of {check_id}", scope, reason)
    resource = cfn_resource(scope, "a checkov skip")
    existing = resource.get_metadata("checkov") or {"skip": []}
    skips = [s for s in existing["skip"] if s["id"] != check_id]
    skips.append({"id": check_id, "comment": reason})
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

def skip_cdk_provider_checks(stack: Stack) -> None:
    """Skip `_CDK_PROVIDER_SKIPS` on the custom-resource provider functions aws-cdk-lib adds.

    aws-cdk-lib puts each provider at the top of its stack as `Custom::<Name>CustomResourceProvider`
    with a `Handler` function; looking only there, rather than walking the tree (an Aspect calls back
    from Node into Python for every construct), keeps synth fast.
    """
    for child in stack.node.children:
        if child.node.id.startswith("Custom::") and child.node.id.endswith("CustomResourceProvider"):
            handler = child.node.try_find_child("Handler")
            if isinstance(handler, CfnResource):
                for check_id, reason in _CDK_PROVIDER_SKIPS.items():
                    skip_check(handler, check_id, reason)
                suppress(handler, "CT.LAMBDA.PR.3", _CDK_PROVIDER_SKIPS["CKV_AWS_117"])
