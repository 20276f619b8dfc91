"""DLQ-redrive function: packaging, runtime settings, least-privilege IAM, alarms, schedules."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from cdk_app.app import feature_flags
from jobfleet_config.config import ENVIRONMENTS_DIR, load_environment
from jobfleet_contract.environment import REDRIVE_SERVICE_NAME
from stacks.constructs import batch_feed
from stacks.constructs.redrive_function import (
    ASSET_PACKAGES,
    HANDLER,
    LAMBDA_DIR,
    powertools_layer_parameter,
    powertools_version,
)
from stacks.lambda_asset import REPO
from stacks.operations import OperationsStack
from stacks.stateful import StatefulStack

ENVS = ["dev", "staging", "prod"]
SQS_DLQ_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                   "sqs:GetQueueAttributes", "sqs:StartMessageMoveTask",
                   "sqs:ListMessageMoveTasks", "sqs:CancelMessageMoveTask"}


@pytest.fixture(scope="module")
def templates(stages):
    return {name: Template.from_stack(stage.operations) for name, stage in stages.items()}


def _function(template: Template) -> dict:
    (function,) = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Handler": HANDLER}}).values()
    return function["Properties"]


def _statements(template: Template, role_ref: dict) -> list[dict]:
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if role_ref in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("env", ENVS)
def test_function_settings_follow_config(templates, stages, env):
    config = stages[env].config
    function = _function(templates[env])
    assert function["FunctionName"] == config.resource_name("redrive")
    assert function["Runtime"] in {"python3.12", "python3.13"}
    assert function["Timeout"] == config.redrive.timeout_seconds
    assert function["ReservedConcurrentExecutions"] == config.redrive.reserved_concurrency == 1
    assert function["TracingConfig"] == {"Mode": "Active"}
    variables = function["Environment"]["Variables"]
    assert variables["MAX_REDRIVES"] == str(config.redrive.max_redrives)
    assert variables["POWERTOOLS_SERVICE_NAME"] == REDRIVE_SERVICE_NAME
    assert variables["STATUS_TABLE"] == stages[env].operations.resolve(
        stages[env].stateful.status_table.table_name)


@pytest.mark.parametrize("env", ENVS)
def test_tier_queues_variable_maps_every_tier_to_its_queue_and_dlq(templates, stages, env):
    stage = stages[env]
    raw = _function(templates[env])["Environment"]["Variables"]["TIER_QUEUES"]
    # Fn::Join of literal JSON fragments and queue URL imports: rebuild it with placeholders.
    placeholders = {}

    def render(part):
        if isinstance(part, str):
            return part
        key = f"<{len(placeholders)}>"
        placeholders[key] = part
        return key

    text = "".join(render(p) for p in raw["Fn::Join"][1])
    decoded = json.loads(text)
    assert set(decoded) == {t.name for t in stage.config.tiers}
    for tier, urls in decoded.items():
        queues = stage.stateful.tier_queues[tier]
        assert placeholders[urls["queueUrl"]] == stage.operations.resolve(queues.queue.queue_url)
        assert placeholders[urls["dlqUrl"]] == stage.operations.resolve(
            queues.dead_letter_queue.queue_url)


@pytest.mark.parametrize("env", ENVS)
def test_log_group_has_the_configured_retention(templates, stages, env):
    template = templates[env]
    function = _function(template)
    log_group_id = function["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = template.to_json()["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == stages[env].config.app.log_retention_days
    assert log_group["LogGroupName"] == f"/aws/lambda/{stages[env].config.resource_name('redrive')}"


@pytest.mark.parametrize("env", ENVS)
def test_iam_is_scoped_to_this_environments_tier_queues(templates, stages, env):
    stage = stages[env]
    template = templates[env]
    role_id = _function(template)["Role"]["Fn::GetAtt"][0]
    statements = _statements(template, {"Ref": role_id})
    resolve = stage.operations.resolve
    dlqs = [resolve(q.dead_letter_queue.queue_arn) for q in stage.stateful.tier_queues.values()]
    queues = [resolve(q.queue.queue_arn) for q in stage.stateful.tier_queues.values()]
    sqs_statements = [s for s in statements if any(a.startswith("sqs:") for a in _as_list(s["Action"]))]
    assert sqs_statements
    granted: dict[str, list] = {}
    for statement in sqs_statements:
        resources = _as_list(statement["Resource"])
        assert "*" not in resources and statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert "*" not in action
            granted.setdefault(action, []).extend(resources)
    for action in SQS_DLQ_ACTIONS - {"sqs:GetQueueAttributes"}:
        assert sorted(map(json.dumps, granted[action])) == sorted(map(json.dumps, dlqs)), action
    assert sorted(map(json.dumps, granted["sqs:SendMessage"])) == sorted(map(json.dumps, queues))
    assert sorted(map(json.dumps, granted["sqs:GetQueueAttributes"])) == sorted(
        map(json.dumps, dlqs + queues))
    # Nothing else in the policies reaches beyond X-Ray with a wildcard resource.
    for statement in statements:
        if "*" in _as_list(statement["Resource"]):
            assert all(a.startswith("xray:") for a in _as_list(statement["Action"])), statement
    dynamo = [s for s in statements if "dynamodb:UpdateItem" in _as_list(s["Action"])]
    assert [s["Resource"] for s in dynamo] == [resolve(stage.stateful.status_table.table_arn)]
    kms = [s for s in statements if any(a.startswith("kms:") for a in _as_list(s["Action"]))]
    if stage.stateful.key is None:
        assert kms == []
    else:
        assert [s["Resource"] for s in kms] == [resolve(stage.stateful.key.key_arn)]


@pytest.mark.parametrize("env", ENVS)
def test_powertools_layer_is_the_release_pinned_in_requirements(templates, env):
    template = templates[env]
    layer_ref = _function(template)["Layers"]
    assert len(layer_ref) == 1
    parameter = template.to_json()["Parameters"][layer_ref[0]["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == powertools_layer_parameter(powertools_version())
    assert parameter["Default"].endswith("/python3.13/" + powertools_version())


def test_powertools_version_comes_from_the_pin():
    requirements = (LAMBDA_DIR / "redrive" / "requirements.txt").read_text()
    assert f"=={powertools_version()}" in requirements


# Each function shipping jobfleet_contract: (stack of the stage, handler, asset packages, the
# third-party packages its runtime provides: boto3 in the runtime, Powertools from its layer).
CONTRACT_FUNCTIONS = {
    "redrive": ("operations", HANDLER, ASSET_PACKAGES, {"boto3", "botocore", "aws_lambda_powertools",
                                                        "pydantic"}),
    "batch-feed": ("batch", batch_feed.HANDLER, batch_feed.ASSET_PACKAGES, {"boto3", "botocore"}),
}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("function", CONTRACT_FUNCTIONS)
def test_asset_is_the_function_package_and_the_contract_with_an_importable_handler(
        stages, synthesized, env, function):
    stack_name, handler, packages, provided = CONTRACT_FUNCTIONS[function]
    stack = getattr(stages[env], stack_name, None)
    if stack is None:
        pytest.skip(f"{env} has no {stack_name} stack")
    (properties,) = [f["Properties"] for f in Template.from_stack(stack).find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": handler}}).values()]
    outdir, _ = synthesized
    key = properties["Code"]["S3Key"]
    asset = next(outdir.glob(f"asset.{key.removesuffix('.zip')}"))
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    expected = sorted(f"{name}/{p.name}" for name, source in packages.items()
                      for p in source.glob("*.py"))
    assert files == expected
    # The contract the worker runs, byte for byte.
    for path in (REPO / "jobfleet_contract").glob("*.py"):
        assert (asset / "jobfleet_contract" / path.name).read_bytes() == path.read_bytes()
    # Self-contained: every import is the standard library, what the runtime provides, or a
    # package in the asset.
    allowed = {*provided, *packages}
    for path in asset.rglob("*.py"):
        for name in _runtime_imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            assert top in allowed or top in sys.stdlib_module_names, f"{path.name} imports {name}"
    module, function_name = handler.rsplit(".", 1)
    tree = ast.parse((asset / (module.replace(".", "/") + ".py")).read_text())
    assert function_name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # Every import of the package is absolute from the asset root.
    for path in asset.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                pytest.fail(f"relative import in {path.name}")


def _runtime_imports(tree: ast.AST) -> list[str]:
    """The modules a file imports when it runs: not those under `if TYPE_CHECKING:` (type stubs)."""
    names: list[str] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            names += [name for branch in node.orelse for name in _runtime_imports(branch)]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        else:
            names += _runtime_imports(node)
    return names


def test_runtime_imports_skip_type_checking_blocks():
    tree = ast.parse("from typing import TYPE_CHECKING\nimport json\nif TYPE_CHECKING:\n    import stubs\n"
                     "def f():\n    from pkg.mod import x\n")
    assert _runtime_imports(tree) == ["typing", "json", "pkg.mod"]


@pytest.mark.parametrize("env", ENVS)
def test_errors_and_throttles_alarm_on_the_function(templates, stages, env):
    stage = stages[env]
    topic = stage.operations.resolve(stage.operations.topic.topic_arn)
    function_ref = stage.operations.resolve(stage.operations.redrive_function.function_name)
    for what, metric in (("errors", "Errors"), ("throttles", "Throttles")):
        templates[env].has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": stage.config.resource_name("redrive", what),
            "MetricName": metric, "Namespace": "AWS/Lambda",
            "Dimensions": [{"Name": "FunctionName", "Value": function_ref}],
            "AlarmActions": [topic], "OKActions": [topic],
        })


# --- a scheduled redrive and alarm subscriptions, through a local app ------------------------

@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    directory = tmp_path_factory.mktemp("environments")
    (directory / "defaults.toml").write_text((ENVIRONMENTS_DIR / "defaults.toml").read_text())
    (directory / "dev.toml").write_text(textwrap.dedent("""
        [redrive]
        scheduled_tiers = ["critical", "standard"]
        scheduled_error_types = ["TimeoutError", "ThrottlingError"]
        reserved_concurrency = 0
        [alarms]
        emails = ["oncall@example.com"]
        https_endpoints = ["https://hooks.example.com/alarms"]
    """))
    config = load_environment("dev", Path(directory))
    app = cdk.App(context=feature_flags(), outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stage = cdk.Stage(app, "dev")
    stateful = StatefulStack(stage, "Stateful", config=config)
    operations = OperationsStack(stage, "Operations", config=config, stateful=stateful)
    return config, operations, Template.from_stack(operations)


def test_scheduled_tiers_get_an_hourly_filtered_redrive(scheduled):
    config, operations, template = scheduled
    function_arn = operations.resolve(operations.redrive_function.function_arn)
    for tier in config.redrive.scheduled_tiers:
        template.has_resource_properties("AWS::Events::Rule", {
            "Name": config.resource_name(tier, "redrive-hourly"),
            "ScheduleExpression": "rate(1 hour)",
            "Targets": [Match.object_like({
                "Arn": function_arn,
                "Input": json.dumps({"tier": tier, "filter": {
                    "errorTypes": ["TimeoutError", "ThrottlingError"]}}, separators=(",", ":")),
            })],
        })
    assert len(template.find_resources("AWS::Events::Rule")) == 2
    template.resource_count_is("AWS::Lambda::Permission", 2)


def test_reserved_concurrency_zero_reserves_nothing_with_the_reason_recorded(scheduled):
    """Accounts whose Lambda concurrency quota is 10 cannot reserve any: the deploy would fail."""
    _, _, template = scheduled
    (function,) = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Handler": HANDLER}}).values()
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    skips = {s["id"]: s["comment"] for s in function["Metadata"]["checkov"]["skip"]}
    assert "redrive.reserved_concurrency = 0" in skips["CKV_AWS_115"]


def test_alarm_topic_subscriptions_come_from_config(scheduled):
    _, operations, template = scheduled
    topic = operations.resolve(operations.topic.topic_arn)
    template.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": topic})
    template.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "https", "Endpoint": "https://hooks.example.com/alarms", "TopicArn": topic})


def test_without_compute_or_batch_only_queue_and_redrive_alarms_exist(scheduled):
    config, _, template = scheduled
    names = {a["Properties"]["AlarmName"]
             for a in template.find_resources("AWS::CloudWatch::Alarm").values()}
    expected = {config.resource_name(t.name, what) for t in config.tiers
                for what in ("dlq-messages", "oldest-message")}
    expected |= {config.resource_name("redrive", "errors"), config.resource_name("redrive", "throttles")}
    assert names == expected
