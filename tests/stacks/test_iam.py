"""Least privilege over every synthesized IAM policy, in every environment.

No `Action: "*"` and no whole-service wildcard (`sqs:*`) anywhere. `Resource: "*"` only for
actions that AWS does not scope to a resource; each such action is listed below with its reason.
Key policies (AWS::KMS::Key) are not IAM policies: there `Resource: "*"` means "this key".
"""

from __future__ import annotations

import json

import pytest

# Actions that have no resource-level permissions: IAM accepts only Resource "*" for them.
STAR_RESOURCE_ALLOWED = {
    "ecr:GetAuthorizationToken": "registry login token is account-wide; ECR has no resource for it",
    "xray:PutTraceSegments": "X-Ray trace ingestion has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray telemetry ingestion has no resource-level permissions",
    "cloudwatch:PutMetricData": "CloudWatch metrics have no ARN; scoped by a namespace condition where set",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeSecurityGroups": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeSubnets": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeVpcs": "EC2 Describe* calls have no resource-level permissions",
    "sqs:ListQueues": "ListQueues is account-wide; it has no queue resource",
    "logs:DescribeLogGroups": "DescribeLogGroups is account-wide in IAM",
}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _policy_documents(template: dict):
    """(logical id, statement) for every statement of every IAM policy in a template."""
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        else:
            continue
        for document in documents:
            for statement in _as_list(document["Statement"]):
                yield logical_id, statement


@pytest.fixture(scope="module")
def statements(assemblies):
    found = []
    for path in sorted(p for outdir in assemblies for p in outdir.glob("assembly-*/*.template.json")):
        template = json.loads(path.read_text())
        found.extend((path.name, logical_id, s) for logical_id, s in _policy_documents(template))
    assert found, "no IAM policy found: the synth fixture is empty"
    return found


def test_no_action_wildcard(statements):
    for template, logical_id, statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action", [])):
            assert action != "*", (template, logical_id, statement)
            assert not str(action).endswith(":*"), (template, logical_id, action)


def _star_resource_offenders(statements) -> list[str]:
    offenders = []
    for template, logical_id, statement in statements:
        if statement.get("Effect") != "Allow" or "*" not in _as_list(statement.get("Resource", [])):
            continue
        unscoped = [a for a in _as_list(statement["Action"]) if a not in STAR_RESOURCE_ALLOWED]
        if unscoped:
            offenders.append(f"{template} {logical_id}: {unscoped}")
    return offenders


def test_star_resource_only_for_actions_aws_does_not_scope(statements):
    offenders = _star_resource_offenders(statements)
    assert not offenders, "\n".join(offenders)


def test_star_resource_check_catches_an_unscoped_grant():
    template = {"Resources": {"Grant": {"Type": "AWS::IAM::Policy", "Properties": {"PolicyDocument": {
        "Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage", "xray:PutTraceSegments"],
                       "Resource": "*"}]}}}}}
    found = [("t.json", lid, s) for lid, s in _policy_documents(template)]
    assert _star_resource_offenders(found) == ["t.json Grant: ['sqs:SendMessage']"]


def test_every_allowed_star_resource_action_has_a_reason():
    for action, reason in STAR_RESOURCE_ALLOWED.items():
        assert ":" in action and len(reason) > 30, action
