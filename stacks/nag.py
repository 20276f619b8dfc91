"""cdk-nag acknowledgments with enforced reasons.

AwsSolutions gates every synth. NIST 800-53 rev5, HIPAA Security, PCI DSS 3.2.1 and Serverless run
in report mode in the tests only (tests/stacks/test_nag_packs.py: counts per rule, a committed
baseline that may not grow); `acknowledge_report` silences one of their rules on a construct.

cdk-nag 3.x accepts an empty reason; this wrapper does not. Every acknowledgment in the project
goes through `acknowledge`, and tests/stacks/test_nag.py checks every acknowledgment in the
synthesized tree, so a vague reason fails the build either way.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

from stacks.reasons import specific_reason


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge AwsSolutions `rule` (e.g. "IAM5") on `scope` and everything under it."""
    reason = specific_reason(f"cdk-nag acknowledgment of {rule}", scope, reason)
    rule_id = rule if rule.startswith("AwsSolutions-") else f"AwsSolutions-{rule}"
    # cdk-nag 3 reports findings as "<pack>::<rule>"; that is the id an acknowledgment must use.
    cdk.Validations.of(scope).acknowledge(
        cdk.Acknowledgment(id=f"AwsSolutions::{rule_id}", reason=reason))


# The packs run in report mode (tests only), by the prefix of their rule ids.
REPORT_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321", "Serverless")


def acknowledge_report(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. "LambdaDLQ") of every report-mode pack on `scope` and below.

    Report packs are run with `NagPack.validate_scope`, which matches an acknowledgment by the
    bare rule id (`<pack>-<rule>`), without the `<pack>::` prefix the synth-time plugin uses.
    """
    reason = specific_reason(f"cdk-nag acknowledgment of {rule}", scope, reason)
    cdk.Validations.of(scope).acknowledge(*(
        cdk.Acknowledgment(id=f"{pack}-{rule}", reason=reason) for pack in REPORT_PACKS))
