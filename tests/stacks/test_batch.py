"""Batch stack: Spot compute with on-demand fallback, job definition, feed function, failure route.

cdk-nag and Checkov do not model Batch job definitions, so their hardening (read-only root,
non-root user, log retention) and the feed's least-privilege role are asserted here.
"""

from __future__ import annotations

import dataclasses
import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_batch as batch
from aws_cdk import aws_events as events
from aws_cdk.assertions import Match, Template

from cdk_app.app import feature_flags
from cdk_app.stage import JobFleetStage
from jobfleet_config.config import load_environment
from jobfleet_tools.local.batch import retry_strategy
from stacks.constructs.batch_failure_route import INPUT_PATHS, INPUT_TEMPLATE

ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def templates(stages):
    return {name: Template.from_stack(stage.batch) for name, stage in stages.items()}


def _one(template: Template, resource_type: str) -> dict:
    (resource,) = template.find_resources(resource_type).values()
    return resource["Properties"]


def _compute_environments(template: Template) -> dict[str, dict]:
    return {logical_id: r["Properties"]
            for logical_id, r in template.find_resources("AWS::Batch::ComputeEnvironment").items()}


def _job_definition(template: Template) -> dict:
    return _one(template, "AWS::Batch::JobDefinition")


def _output_name(value: dict) -> str:
    """The export a weak cross-stack reference reads (Fn::GetStackOutput), or "" if none."""
    return value.get("Fn::GetStackOutput", {}).get("OutputName", "") if isinstance(value, dict) else ""


def _role_statements(template: Template, role_id: str) -> list[dict]:
    """Every statement of the policies attached to the role with this logical ID."""
    policies = [p["Properties"]["PolicyDocument"]["Statement"]
                for p in template.find_resources("AWS::IAM::Policy").values()
                if {"Ref": role_id} in p["Properties"]["Roles"]]
    assert policies, role_id
    return [s for statements in policies for s in statements]


# --- compute -------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_spot_compute_environment_from_config(templates, stages, env):
    config = stages[env].config.batch
    spot = [p for p in _compute_environments(templates[env]).values()
            if p["ComputeResources"]["Type"] == "SPOT"]
    assert len(spot) == 1
    resources = spot[0]["ComputeResources"]
    assert resources["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resources["InstanceTypes"] == list(config.instance_classes)
    assert resources["MaxvCpus"] == config.max_vcpus
    assert resources["MinvCpus"] == 0
    assert spot[0]["Type"] == "managed"


@pytest.mark.parametrize("env", ENVS)
def test_compute_runs_in_private_subnets_from_a_hardened_launch_template(templates, env):
    template = templates[env]
    (template_id,) = template.find_resources("AWS::EC2::LaunchTemplate")
    for properties in _compute_environments(template).values():
        resources = properties["ComputeResources"]
        subnets = [_output_name(s) for s in resources["Subnets"]]
        assert len(subnets) == 2 and all("privateSubnet" in s for s in subnets), subnets
        assert resources["LaunchTemplate"] == {"LaunchTemplateId": {"Ref": template_id}}
    data = _one(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    # The AMI's default is 2 (a container one hop away reaches the instance role): set explicitly.
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["Monitoring"] == {"Enabled": True}  # one-minute metrics (Control Tower CT.EC2.PR.10)
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True
    assert "UserData" not in data  # Batch needs MIME user data; none is set
    security_group = _one(template, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in security_group


def test_on_demand_fallback_at_order_two(templates, stages):
    assert stages["prod"].config.batch.on_demand_fallback
    template = templates["prod"]
    environments = _compute_environments(template)
    by_type = {p["ComputeResources"]["Type"]: logical_id for logical_id, p in environments.items()}
    assert set(by_type) == {"SPOT", "EC2"}
    on_demand = environments[by_type["EC2"]]["ComputeResources"]
    assert on_demand["MaxvCpus"] == stages["prod"].config.batch.on_demand_max_vcpus
    order = _one(template, "AWS::Batch::JobQueue")["ComputeEnvironmentOrder"]
    assert sorted(order, key=lambda o: o["Order"]) == [
        {"ComputeEnvironment": {"Fn::GetAtt": [by_type["SPOT"], "ComputeEnvironmentArn"]}, "Order": 1},
        {"ComputeEnvironment": {"Fn::GetAtt": [by_type["EC2"], "ComputeEnvironmentArn"]}, "Order": 2},
    ]


def test_dev_without_fallback_has_only_spot(templates, stages):
    assert stages["dev"].config.batch.on_demand_fallback is False
    environments = _compute_environments(templates["dev"])
    assert [p["ComputeResources"]["Type"] for p in environments.values()] == ["SPOT"]
    (order,) = _one(templates["dev"], "AWS::Batch::JobQueue")["ComputeEnvironmentOrder"]
    assert order["Order"] == 1


@pytest.mark.parametrize("env", ENVS)
def test_jobs_stuck_runnable_are_cancelled(templates, stages, env):
    queue = _one(templates[env], "AWS::Batch::JobQueue")
    assert queue["JobQueueName"] == f"jobfleet-{env}-batch"
    actions = queue["JobStateTimeLimitActions"]
    assert {a["Reason"] for a in actions} == {
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"}
    for action in actions:
        assert action["Action"] == "CANCEL" and action["State"] == "RUNNABLE"
        assert action["MaxTimeSeconds"] == stages[env].config.batch.runnable_timeout_seconds


# --- job definition ------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_job_definition_runs_run_one_with_the_envelope_and_generation_parameters(templates, env):
    definition = _job_definition(templates[env])
    container = definition["ContainerProperties"]
    assert container["Command"][:4] == ["python", "-m", "worker", "run-one"]
    assert container["Command"][4:] == ["--envelope", "Ref::envelope", "--generation", "Ref::generation"]
    # A job submitted without `generation` (an older feed) runs as generation 0; the envelope has
    # no default: a job without one is a feed bug that must not run.
    assert definition["Parameters"] == {"generation": "0"}


@pytest.mark.parametrize("env", ENVS)
def test_retry_on_spot_reclaim_only(templates, stages, env):
    strategy = _job_definition(templates[env])["RetryStrategy"]
    assert strategy["Attempts"] == stages[env].config.batch.spot_retry_attempts
    assert strategy["EvaluateOnExit"] == [
        {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
        {"Action": "EXIT", "OnReason": "*"},
    ]


@pytest.mark.parametrize("env", ENVS)
def test_local_mode_retries_as_the_job_definition_does(templates, stages, env):
    """Local mode's Batch stand-in registers and applies this retry strategy (docs/local.md)."""
    synthesized = _job_definition(templates[env])["RetryStrategy"]
    local = retry_strategy(stages[env].config)
    assert synthesized["Attempts"] == local["attempts"]
    assert synthesized["EvaluateOnExit"] == [{key[0].upper() + key[1:]: value for key, value in c.items()}
                                             for c in local["evaluateOnExit"]]


@pytest.mark.parametrize("env", ENVS)
def test_size_and_timeout_from_the_tier(templates, stages, env):
    (tier,) = stages[env].config.batch_tiers
    definition = _job_definition(templates[env])
    assert definition["Timeout"] == {"AttemptDurationSeconds": tier.max_job_seconds}
    assert definition["PlatformCapabilities"] == ["EC2"]
    requirements = {r["Type"]: r["Value"] for r in definition["ContainerProperties"]["ResourceRequirements"]}
    assert requirements == {"VCPU": str(tier.cpu // 1024), "MEMORY": str(tier.memory_mib)}


@pytest.mark.parametrize("env", ENVS)
def test_container_is_hardened_and_logs_with_retention(templates, stages, env):
    template = templates[env]
    container = _job_definition(template)["ContainerProperties"]
    assert container["ReadonlyRootFilesystem"] is True
    assert container["User"] == "10001"
    assert container["MountPoints"] == [{"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "tmp"}]
    assert container["Volumes"] == [{"Host": {}, "Name": "tmp"}]
    assert "Privileged" not in container
    log_config = container["LogConfiguration"]
    assert log_config["LogDriver"] == "awslogs"
    group_id = log_config["Options"]["awslogs-group"]["Ref"]
    group = template.to_json()["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == stages[env].config.app.log_retention_days


@pytest.mark.parametrize("env", ENVS)
def test_job_environment_and_status_table_access(templates, env):
    template = templates[env]
    container = _job_definition(template)["ContainerProperties"]
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert environment["TIER"] == "batch"
    assert "JobStatusTable" in _output_name(environment["STATUS_TABLE"])
    role_id = container["JobRoleArn"]["Fn::GetAtt"][0]
    statements = _role_statements(template, role_id)
    dynamodb = [s for s in statements if str(s["Action"]).startswith("['dynamodb") or
                str(s["Action"]).startswith("dynamodb")]
    (table_access,) = dynamodb
    assert sorted(table_access["Action"]) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert "JobStatusTable" in _output_name(table_access["Resource"])
    kms = [s for s in statements if "kms:Decrypt" in s["Action"]]
    assert len(kms) == (1 if env == "prod" else 0)


# --- feed: submitter function -------------------------------------------------------------

def _feed_function(template: Template) -> tuple[str, dict]:
    (item,) = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Handler": "batch_submit.handler.handler"}}).items()
    return item[0], item[1]["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_no_pipe_the_feed_function_submits_each_message_to_the_job_queue(templates, env):
    """Every value passed is a documented string: the SQS body as the `envelope` parameter."""
    template = templates[env]
    assert not template.find_resources("AWS::Pipes::Pipe")
    function_id, function = _feed_function(template)
    (queue_id,) = template.find_resources("AWS::Batch::JobQueue")
    (definition_id,) = template.find_resources("AWS::Batch::JobDefinition")
    assert function["Environment"]["Variables"] == {
        "JOB_QUEUE": {"Fn::GetAtt": [queue_id, "JobQueueArn"]},
        "JOB_DEFINITION": {"Ref": definition_id},
        "JOB_NAME": f"jobfleet-{env}-batch",
    }
    assert "ReservedConcurrentExecutions" not in function
    mapping = _one(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionName"] == {"Ref": function_id}
    source = _output_name(mapping["EventSourceArn"])
    assert "TierbatchQueue" in source and "DeadLetter" not in source, source
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10


@pytest.mark.parametrize("env", ENVS)
def test_feed_role_is_least_privilege(templates, env):
    template = templates[env]
    _, function = _feed_function(template)
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = template.to_json()["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    statements = _role_statements(template, role_id)
    actions = set()
    for statement in statements:
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        actions |= set(listed)
        assert all("*" not in a for a in listed), statement
        if statement["Resource"] == "*":  # tracing: X-Ray has no resource-level permissions
            assert set(listed) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, statement
            continue
        assert "*" not in json.dumps(statement["Resource"]), statement
    sqs_actions = {a for a in actions if a.startswith("sqs:")}
    assert sqs_actions <= {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl",
                           "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    (queue_id,) = template.find_resources("AWS::Batch::JobQueue")
    (definition_id,) = template.find_resources("AWS::Batch::JobDefinition")
    (submit,) = [s for s in statements if s["Action"] == "batch:SubmitJob"]
    assert submit["Resource"] == [{"Fn::GetAtt": [queue_id, "JobQueueArn"]}, {"Ref": definition_id}]
    assert ("kms:Decrypt" in actions) == (env == "prod")
    assert actions - sqs_actions <= {"batch:SubmitJob", "logs:CreateLogStream", "logs:PutLogEvents",
                                     "kms:Decrypt", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# --- failure route -------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_failed_jobs_of_this_queue_go_to_the_batch_dlq(templates, env):
    template = templates[env]
    (queue_id,) = template.find_resources("AWS::Batch::JobQueue")
    rule = _one(template, "AWS::Events::Rule")
    assert rule["Name"] == f"jobfleet-{env}-batch-failed"
    assert rule["EventPattern"] == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"status": ["FAILED"], "jobQueue": [{"Fn::GetAtt": [queue_id, "JobQueueArn"]}]},
    }
    (target,) = rule["Targets"]
    assert "TierbatchDeadLetterQueue" in _output_name(target["Arn"])
    assert target["DeadLetterConfig"]["Arn"] == target["Arn"]
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"]["envelope"] == "$.detail.parameters.envelope"
    assert transformer["InputPathsMap"]["statusReason"] == "$.detail.statusReason"
    assert transformer["InputTemplate"] == INPUT_TEMPLATE


def _render(template: str, event: dict) -> str:
    """What EventBridge sends: quoted placeholders get JSON-escaped strings, bare ones raw JSON."""
    def value(path: str):
        node = event
        for part in path.removeprefix("$.").split("."):
            node = node.get(part, "") if isinstance(node, dict) else ""
        return node

    def substitute(match: re.Match) -> str:
        quoted, name = match.group(1), match.group(2)
        found = value(INPUT_PATHS[name])
        if quoted:
            return json.dumps(found if isinstance(found, str) else json.dumps(found))
        return json.dumps(found)

    return re.sub(r'("?)<([A-Za-z]+)>\1', substitute, template)


def test_dlq_message_carries_the_original_envelope_and_the_reason():
    envelope = json.dumps({"jobId": "j-1", "type": "analysis", "payload": {"q": "a \"quoted\" value"},
                           "submittedAt": "2025-01-01T00:00:00Z"})
    event = {"time": "2025-01-01T05:00:00Z", "detail": {
        "jobId": "b-9", "jobName": "jobfleet-prod-batch", "jobQueue": "arn:queue",
        "jobDefinition": "arn:def:3", "status": "FAILED",
        "statusReason": "Essential container in task exited",
        "parameters": {"envelope": envelope},
        "container": {"exitCode": 2, "logStreamName": "batch/default/abc"},
        "attempts": [{"container": {"exitCode": 2}, "statusReason": "Essential container in task exited"}],
    }}
    message = json.loads(_render(INPUT_TEMPLATE, event))
    assert message["envelope"] == envelope
    assert json.loads(message["envelope"])["payload"] == {"q": 'a "quoted" value'}
    failure = message["failure"]
    assert failure["errorType"] == "BatchJobFailed"
    assert failure["reason"] == "Essential container in task exited"
    assert failure["jobId"] == "b-9" and failure["exitCode"] == "2"
    assert failure["attempts"] == event["detail"]["attempts"]
    assert failure["failedAt"] == "2025-01-01T05:00:00Z"


@pytest.mark.parametrize("env", ENVS)
def test_dlq_admits_events_from_this_rule_only(stages, env):
    stateful = Template.from_stack(stages[env].stateful)
    statements = [s for p in stateful.find_resources("AWS::SQS::QueuePolicy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    (statement,) = statements
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"]["Fn::GetAtt"][0].startswith("TierbatchDeadLetterQueue")
    source_arn = json.dumps(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert f":rule/jobfleet-{env}-batch-failed" in source_arn


def test_prod_key_lets_eventbridge_encrypt_for_this_rule_only(stages):
    stateful = Template.from_stack(stages["prod"].stateful)
    policy = _one(stateful, "AWS::KMS::Key")["KeyPolicy"]["Statement"]
    (statement,) = [s for s in policy if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    source_arn = json.dumps(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert ":rule/jobfleet-prod-batch-failed" in source_arn


@pytest.mark.parametrize("env", ENVS)
def test_stateful_never_depends_on_batch(stages, env):
    stage = stages[env]
    assert stage.batch not in stage.stateful.dependencies
    assert stage.stateful in stage.batch.dependencies
    text = json.dumps(Template.from_stack(stage.stateful).to_json())
    assert f'"StackName": "{stage.batch.stack_name}"' not in text
    assert "Fn::ImportValue" not in text


def test_objects_exposed_for_the_operations_stack(stages):
    stack = stages["prod"].batch
    assert isinstance(stack.job_queue, batch.JobQueue)
    assert isinstance(stack.job_definition, batch.EcsJobDefinition)
    assert isinstance(stack.failure_rule, events.Rule)
    assert stack.tiers["batch"].job_queue is stack.job_queue


# --- other configurations (local apps, no cdk-nag) -----------------------------------------

def _stage(config) -> JobFleetStage:
    app = cdk.App(context=feature_flags())
    return JobFleetStage(app, config)


def test_no_batch_tier_means_no_batch_stack():
    config = load_environment("dev")
    service_only = dataclasses.replace(
        config, tiers=config.service_tiers,
        job_types={k: v for k, v in config.job_types.items() if v != "batch"})
    stage = _stage(service_only)
    assert stage.batch is None
    assert not any(isinstance(c, cdk.Stack) and c.node.id == "Batch" for c in stage.node.children)


def test_fargate_spot_alternative_with_fargate_fallback():
    config = load_environment("prod")
    fargate = dataclasses.replace(config, batch=dataclasses.replace(config.batch, compute="fargate-spot"))
    stage = _stage(fargate)
    template = Template.from_stack(stage.batch)
    environments = _compute_environments(template)
    by_type = {p["ComputeResources"]["Type"]: logical_id for logical_id, p in environments.items()}
    assert set(by_type) == {"FARGATE_SPOT", "FARGATE"}
    template.resource_count_is("AWS::EC2::LaunchTemplate", 0)
    order = {o["Order"]: o["ComputeEnvironment"]["Fn::GetAtt"][0]
             for o in _one(template, "AWS::Batch::JobQueue")["ComputeEnvironmentOrder"]}
    assert order == {1: by_type["FARGATE_SPOT"], 2: by_type["FARGATE"]}
    definition = _job_definition(template)
    assert definition["PlatformCapabilities"] == ["FARGATE"]
    assert definition["RetryStrategy"]["EvaluateOnExit"][0] == {
        "Action": "RETRY", "OnStatusReason": "Your Spot Task was interrupted*"}
    assert retry_strategy(fargate)["evaluateOnExit"][0] == {  # local mode's Batch stand-in
        "action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"}
    container = definition["ContainerProperties"]
    assert container["ReadonlyRootFilesystem"] is True and container["User"] == "10001"
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "DISABLED"}
    template.has_resource_properties("AWS::Batch::ComputeEnvironment", {
        "ComputeResources": Match.object_like({"Type": "FARGATE_SPOT",
                                               "MaxvCpus": config.batch.max_vcpus})})


def _asset_tags(template: Template, resource_type: str, images) -> set[str]:
    found = set()
    for resource in template.find_resources(resource_type).values():
        for image in images(resource["Properties"]):
            if isinstance(image, dict) and "Fn::Sub" in image and "container-assets" in image["Fn::Sub"]:
                found.add(image["Fn::Sub"].rsplit(":", 1)[1])
    return found


def test_worker_image_is_the_asset_the_fargate_tiers_run(templates, stages):
    batch_tags = _asset_tags(templates["prod"], "AWS::Batch::JobDefinition",
                             lambda p: [p["ContainerProperties"]["Image"]])
    compute_tags = _asset_tags(Template.from_stack(stages["prod"].compute), "AWS::ECS::TaskDefinition",
                               lambda p: [c["Image"] for c in p["ContainerDefinitions"]])
    assert len(batch_tags) == 1
    assert batch_tags <= compute_tags
