"""The "Done when" scenario: a dev configuration naming the example team package, an extra variable, a
Secrets Manager secret, an S3 read permission and a prebuilt image digest (tests/support/team_dev.toml),
synthesized once. The templates wire exactly those; the shipped environments keep their defaults.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

DIGEST = "sha256:5e0bcb4cd4e1f7a7a2d7e1b0b5c6d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f"


def _task_definitions(template: dict) -> dict[str, dict]:
    """Worker task definitions by tier (from the TIER variable)."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        container = resource["Properties"]["ContainerDefinitions"][0]
        env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
        if "TIER" in env:
            found[env["TIER"]] = resource["Properties"]
    return found


@pytest.fixture(scope="module")
def team(team_synthesized):
    _, stage = team_synthesized
    return stage, Template.from_stack(stage.compute).to_json()


def _container(task_definition: dict) -> dict:
    return task_definition["ContainerDefinitions"][0]


def _env(container: dict) -> dict:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def test_the_team_package_is_what_the_workers_import(team):
    _, template = team
    tasks = _task_definitions(template)
    assert {tier: _env(_container(t))["WORKER_HANDLERS"] for tier, t in tasks.items()} == {
        "critical": "team_jobs", "standard": "team_jobs"}


def test_the_extra_variable_is_plain_environment(team):
    _, template = team
    standard = _env(_container(_task_definitions(template)["standard"]))
    assert standard["PARTNER_API_URL"] == "https://partner.example.com/api"
    assert "PARTNER_API_URL" not in _env(_container(_task_definitions(template)["critical"]))


def test_the_secret_is_a_container_secret_never_environment(team):
    _, template = team
    container = _container(_task_definitions(template)["standard"])
    assert "PARTNER_API_KEY" not in _env(container)
    (secret,) = container["Secrets"]
    assert secret["Name"] == "PARTNER_API_KEY"
    value_from = "".join(p if isinstance(p, str) else "<ref>" for p in secret["ValueFrom"]["Fn::Join"][1])
    assert value_from.endswith(":secret:team/partner-api:apiKey::")
    tasks = _task_definitions(template).values()
    assert not [e for t in tasks for e in _container(t)["Environment"] if "team/partner-api" in json.dumps(e)]


def test_only_the_execution_role_reads_the_secret_and_only_that_one(team):
    _, template = team
    readers = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("secretsmanager:") for a in actions):
                readers.append((logical_id, sorted(actions), json.dumps(statement["Resource"])))
    assert len(readers) == 1, readers
    logical_id, actions, resource = readers[0]
    assert "standard" in logical_id and "ExecutionRole" in logical_id
    assert actions == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    assert resource.endswith(':secret:team/partner-api-??????"]]}')


def test_the_s3_read_permission_is_scoped_to_the_named_prefix(team):
    _, template = team
    policies = [r for k, r in template["Resources"].items()
                if r["Type"] == "AWS::IAM::Policy" and "standardTeamPermissions" in k]
    (policy,) = policies
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {"Action": "s3:GetObject", "Effect": "Allow",
         "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::team-input/reports/*"]]}},
        {"Action": "s3:ListBucket", "Effect": "Allow",
         "Condition": {"StringLike": {"s3:prefix": ["reports/*"]}},
         "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::team-input"]]}},
    ]
    # The tiers that name no permissions get no team policy.
    assert not [k for k in template["Resources"] if "criticalTeamPermissions" in k]


def test_the_prebuilt_image_digest_is_used_and_pulled_from_its_repository(team):
    _, template = team
    image = _container(_task_definitions(template)["standard"])["Image"]
    assert image == {"Fn::Join": ["", ["123456789012.dkr.ecr.eu-west-1.", {"Ref": "AWS::URLSuffix"},
                                       f"/team/worker@{DIGEST}"]]}
    pulls = [s for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
             for s in r["Properties"]["PolicyDocument"]["Statement"]
             if s["Resource"] == "arn:aws:ecr:eu-west-1:123456789012:repository/team/worker"]
    assert pulls and all("ecr:BatchGetImage" in s["Action"] for s in pulls)
    # The critical tier (no image configured) still runs the worker image asset.
    assert "cdk-hnb659fds-container-assets" in json.dumps(
        _container(_task_definitions(template)["critical"])["Image"])


def test_the_architecture_and_storage_are_set_per_tier(team):
    _, template = team
    tasks = _task_definitions(template)
    assert tasks["standard"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert tasks["standard"]["EphemeralStorage"] == {"SizeInGiB": 40}
    assert tasks["critical"]["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
    assert "EphemeralStorage" not in tasks["critical"]


def test_job_type_settings_reach_the_workers_of_their_tier(team):
    _, template = team
    tasks = _task_definitions(template)
    standard, critical = _env(_container(tasks["standard"])), _env(_container(tasks["critical"]))
    assert json.loads(standard["JOB_TIMEOUTS"]) == {"invoice.render": 300, "partner.sync": 60}
    assert json.loads(standard["JOB_ISOLATION"]) == {"invoice.render": "process"}
    assert json.loads(standard["JOB_BREAKERS"]) == {"partner.sync": {"failures": 3, "cooldownSeconds": 120}}
    assert not {"JOB_TIMEOUTS", "JOB_ISOLATION", "JOB_BREAKERS"} & set(critical)


def test_the_batch_tier_runs_the_team_package_with_its_parameter_secret(team_synthesized):
    _, stage = team_synthesized
    template = Template.from_stack(stage.batch)
    (definition,) = template.find_resources("AWS::Batch::JobDefinition").values()
    container = definition["Properties"]["ContainerProperties"]
    assert {"Name": "WORKER_HANDLERS", "Value": "team_jobs"} in container["Environment"]
    assert "USAGE_DB_URL" not in {e["Name"] for e in container["Environment"]}
    (secret,) = container["Secrets"]
    assert secret["Name"] == "USAGE_DB_URL"
    assert json.dumps(secret["ValueFrom"]).endswith(':parameter/team/usage-db-url"]]}')
    policies = template.find_resources("AWS::IAM::Policy").items()
    reads = [(logical_id, statement) for logical_id, policy in policies
             for statement in policy["Properties"]["PolicyDocument"]["Statement"]
             if "ssm:GetParameters" in statement["Action"]]
    (logical_id, statement), = reads
    assert "ContainerExecutionRole" in logical_id  # the execution role, not the job role
    assert json.dumps(statement["Resource"]).endswith(':parameter/team/usage-db-url"]]}')


def test_results_bucket_is_encrypted_tls_only_private_with_lifecycle(team_synthesized):
    _, stage = team_synthesized
    template = Template.from_stack(stage.stateful)
    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LifecycleConfiguration": {"Rules": [Match.object_like({
            "Prefix": "results/", "ExpirationInDays": stage.config.results.expiry_days,
            "Status": "Enabled"})]},
    })
    tls_only = Match.object_like({"Effect": "Deny", "Action": "s3:*",
                                  "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([tls_only])}})


def test_workers_put_results_and_events_the_api_reads_results(team):
    _, template = team
    by_action: dict[str, list] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                by_action.setdefault(action, []).append((logical_id, json.dumps(statement["Resource"])))
    puts = by_action["s3:PutObject"]
    assert sorted(lid.split("ResultsAccess")[0] for lid, _ in puts) == ["Workerscritical", "Workersstandard"]
    assert all(':s3:::jobfleet-dev-results-' in r and r.endswith('/results/*"]]}') for _, r in puts)
    (api_read,) = [r for lid, r in by_action["s3:GetObject"] if lid.startswith("ApiResultsAccess")]
    assert api_read.endswith('/results/*"]]}')
    events = by_action["events:PutEvents"]
    assert len(events) == 2 and all(r.endswith(':event-bus/default"]]}') for _, r in events)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_shipped_environments_still_run_the_examples_and_say_so(stages, env):
    stage = stages[env]
    template = Template.from_stack(stage.compute)
    template.has_resource_properties("AWS::ECS::TaskDefinition", {
        "ContainerDefinitions": [Match.object_like({"Environment": Match.array_with([
            {"Name": "WORKER_HANDLERS", "Value": "worker.examples"}])})]})
    assert any("still runs JobFleet's example handlers" in w for w in stage.config.warnings)
