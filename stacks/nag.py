"""cdk-nag acknowledgments with enforced reasons.

cdk-nag 3.x accepts an empty reason; this wrapper does not. Every acknowledgment in the project
goes through `acknowledge`, and tests/stacks/test_nag.py checks every acknowledgment in the
synthesized tree, so a vague reason fails the build either way.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

MIN_REASON_CHARS = 40


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge AwsSolutions `rule` (e.g. "IAM5") on `scope` and everything under it."""
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"cdk-nag acknowledgment of {rule} on {scope.node.path} needs a specific "
                         f"reason of at least {MIN_REASON_CHARS} characters, got {reason!r}")
    rule_id = rule if rule.startswith("AwsSolutions-") else f"AwsSolutions-{rule}"
    # cdk-nag 3 reports findings as "<pack>::<rule>"; that is the id an acknowledgment must use.
    cdk.Validations.of(scope).acknowledge(
        cdk.Acknowledgment(id=f"AwsSolutions::{rule_id}", reason=reason.strip()))
