"""cfn-guard (AWS Control Tower proactive controls) acknowledgments, next to the resource.

`suppress` writes `Metadata.guard.SuppressedRules` (the control ids, e.g. "CT.S3.PR.2") and
`Metadata.guard.Reasons` ({control id: reason}) on the CloudFormation resource. The Control Tower
rules do not read that metadata themselves: tests/stacks/test_guard.py runs cfn-guard over the
synthesized templates, subtracts exactly these acknowledgments, and fails on any other failure,
on an acknowledgment without a specific reason, and on one that no longer matches a failure.
"""

from __future__ import annotations

from constructs import IConstruct

from stacks.reasons import cfn_resource, specific_reason


def suppress(scope: IConstruct, control: str, reason: str) -> None:
    """Acknowledge Control Tower `control` on `scope` (a CfnResource or an L2 wrapping one)."""
    reason = specific_reason(f"cfn-guard acknowledgment of {control}", scope, reason)
    resource = cfn_resource(scope, "a guard suppression")
    guard = resource.get_metadata("guard") or {"SuppressedRules": [], "Reasons": {}}
    rules = [r for r in guard["SuppressedRules"] if r != control] + [control]
    resource.add_metadata("guard", {"SuppressedRules": rules,
                                    "Reasons": {**guard["Reasons"], control: reason}})
