"""What every suppression mechanism of the project shares: a specific reason, and the resource.

checkov skips (stacks.checkov), cfn-guard acknowledgments (stacks.guard) and cdk-nag
acknowledgments (stacks.nag) all refuse a reason shorter than MIN_REASON_CHARS; the first two are
written as CloudFormation metadata on the resource an L2 construct wraps.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON_CHARS = 40


def specific_reason(what: str, scope: IConstruct, reason: str) -> str:
    """`reason` stripped; ValueError naming `what` and the construct when it is too short."""
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"{what} on {scope.node.path} needs a specific reason of at least "
                         f"{MIN_REASON_CHARS} characters, got {reason!r}")
    return reason.strip()


def cfn_resource(scope: IConstruct, carrying: str) -> CfnResource:
    """`scope` itself if it is a CfnResource, else the one its L2 wraps (its default child)."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource to carry {carrying}")
    return resource
