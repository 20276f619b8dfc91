"""Stateful stack: per-tier queue + DLQ, encryption, TLS-only policies, redrive, retention, outputs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Capture, Match, Template

ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def templates(stages):
    return {name: Template.from_stack(stage.stateful) for name, stage in stages.items()}


def _queues(template: Template) -> dict[str, dict]:
    """Queue properties by QueueName."""
    return {r["Properties"]["QueueName"]: r for r in template.find_resources("AWS::SQS::Queue").values()}


@pytest.mark.parametrize("env", ENVS)
def test_one_queue_and_dlq_per_tier(templates, stages, env):
    config = stages[env].config
    names = set(_queues(templates[env]))
    expected = {f"jobfleet-{env}-{t.name}" for t in config.tiers}
    assert names == expected | {f"{n}-dlq" for n in expected}


@pytest.mark.parametrize("env", ENVS)
def test_redrive_policy_targets_own_dlq_with_tier_max_receive_count(templates, stages, env):
    queues = _queues(templates[env])
    for tier in stages[env].config.tiers:
        queue = queues[f"jobfleet-{env}-{tier.name}"]["Properties"]
        redrive = queue["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == tier.max_receive_count
        dlq_logical_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq = templates[env].to_json()["Resources"][dlq_logical_id]["Properties"]
        assert dlq["QueueName"] == f"jobfleet-{env}-{tier.name}-dlq"


@pytest.mark.parametrize("env", ENVS)
def test_dlq_redrive_allow_policy_only_admits_its_source_queue(templates, stages, env):
    queues = _queues(templates[env])
    for tier in stages[env].config.tiers:
        dlq = queues[f"jobfleet-{env}-{tier.name}-dlq"]["Properties"]
        policy = dlq["RedriveAllowPolicy"]
        assert policy["redrivePermission"] == "byQueue"
        (source,) = policy["sourceQueueArns"]
        assert f":jobfleet-{env}-{tier.name}" in str(source)
        assert f"{tier.name}-dlq" not in str(source)


@pytest.mark.parametrize("env", ENVS)
def test_derived_visibility_timeout_and_retention(templates, stages, env):
    queues = _queues(templates[env])
    for tier in stages[env].config.tiers:
        queue = queues[f"jobfleet-{env}-{tier.name}"]["Properties"]
        dlq = queues[f"jobfleet-{env}-{tier.name}-dlq"]["Properties"]
        assert queue["VisibilityTimeout"] == tier.max_job_seconds + 60
        assert queue["ReceiveMessageWaitTimeSeconds"] == 20
        assert queue["MessageRetentionPeriod"] == tier.queue_retention_days * 86400
        assert dlq["MessageRetentionPeriod"] == 14 * 86400
        assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_sqs_managed_encryption_by_default(templates):
    for queue in _queues(templates["dev"]).values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_prod_uses_customer_managed_key_with_rotation(templates):
    template = templates["prod"]
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    key_ids = list(template.find_resources("AWS::KMS::Key"))
    for queue in _queues(template).values():
        assert queue["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_ids[0], "Arn"]}


@pytest.mark.parametrize("env", ENVS)
def test_every_queue_denies_non_tls_access(templates, env):
    template = templates[env]
    queue_ids = set(template.find_resources("AWS::SQS::Queue"))
    protected = set()
    for policy in template.find_resources("AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        denies_plain = any(
            s["Effect"] == "Deny" and s["Principal"] == {"AWS": "*"}
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements)
        if denies_plain:
            protected.update(q["Ref"] for q in policy["Properties"]["Queues"])
    assert protected == queue_ids


@pytest.mark.parametrize(("env", "policy"), [("dev", "Delete"), ("staging", "Delete"), ("prod", "Retain")])
def test_removal_policy_follows_config(templates, env, policy):
    template = templates[env]
    for queue in template.find_resources("AWS::SQS::Queue").values():
        assert queue["DeletionPolicy"] == policy
        assert queue["UpdateReplacePolicy"] == policy
    template.has_resource("AWS::DynamoDB::GlobalTable", {"DeletionPolicy": policy})


@pytest.mark.parametrize("env", ENVS)
def test_outputs_queue_and_dlq_url_and_arn_per_tier(templates, stages, env):
    outputs = templates[env].find_outputs("*")
    for tier in stages[env].config.tiers:
        for label in ("Queue", "Dlq"):
            for kind in ("Url", "Arn"):
                matches = [o for key, o in outputs.items() if key.startswith(f"{tier.name}{label}{kind}")]
                assert len(matches) == 1, (tier.name, label, kind)
                attr = "QueueUrl" if kind == "Url" else "Arn"
                value = matches[0]["Value"]
                assert ("Ref" in value) if kind == "Url" else (value["Fn::GetAtt"][1] == attr)


def test_status_table_on_demand_with_ttl_and_pitr_in_prod(templates):
    ttl = Capture()
    for env, pitr in (("dev", False), ("prod", True)):
        templates[env].has_resource_properties("AWS::DynamoDB::GlobalTable", {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "jobId", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": ttl, "Enabled": True},
            "Replicas": [Match.object_like({
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": pitr}})],
        })
        assert ttl.as_string() == "expiresAt"
    templates["prod"].has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"}})


def test_local_mode_and_the_tests_make_the_status_table_the_stack_defines(templates, jobs_table):
    """jobs_table (tests/conftest.py) is made by local mode's create_status_table: key, attribute
    types, billing and TTL as in the synthesized table, so a test on it cannot pass on another shape."""
    (table,) = templates["prod"].find_resources("AWS::DynamoDB::GlobalTable").values()
    synthesized = table["Properties"]
    described = jobs_table.meta.client.describe_table(TableName=jobs_table.name)["Table"]
    ttl = jobs_table.meta.client.describe_time_to_live(TableName=jobs_table.name)["TimeToLiveDescription"]

    assert described["KeySchema"] == synthesized["KeySchema"]
    assert described["AttributeDefinitions"] == synthesized["AttributeDefinitions"]
    assert described["BillingModeSummary"]["BillingMode"] == synthesized["BillingMode"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == (
        "ENABLED", synthesized["TimeToLiveSpecification"]["AttributeName"])
