"""Compute stack: cluster, worker services and their scaling, ALB + API service, IAM boundaries.

Resources are found by what they are (tier env var, queue name, service name), never by logical ID.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Matcher, Template
from aws_cdk.region_info import RegionInfo

from stacks.constructs.backlog_scaling import (
    BACKLOG_PER_TASK_EXPRESSION,
    SCALE_IN_MINUTES,
    TASKS_EXPRESSION,
    WAKE_UP_EXPRESSION,
)

ENVS = ["dev", "staging", "prod"]
SQS_READ_OR_DELETE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                      "sqs:PurgeQueue"}


@pytest.fixture(scope="module")
def templates(stages) -> dict[str, Template]:
    return {name: Template.from_stack(stage.compute) for name, stage in stages.items()}


@pytest.fixture(scope="module")
def stateful(stages) -> dict[str, Template]:
    return {name: Template.from_stack(stage.stateful) for name, stage in stages.items()}


# --- helpers ---------------------------------------------------------------------------------

def _resources(template: Template, rtype: str) -> dict[str, dict]:
    return template.find_resources(rtype)


def _queue_ids(stateful: Template, env: str) -> dict[str, str]:
    """Stateful logical ID by queue name (`critical`, `critical-dlq`, ...)."""
    prefix = f"jobfleet-{env}-"
    return {r["Properties"]["QueueName"].removeprefix(prefix): logical_id
            for logical_id, r in stateful.find_resources("AWS::SQS::Queue").items()}


def _refers_to(value: Any, logical_id: str) -> bool:
    """Whether a (cross-stack) reference in `value` points at the stateful resource `logical_id`."""
    return logical_id in json.dumps(value)


def _env(container: dict) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def _task_definitions(template: Template) -> dict[str, dict]:
    """Task definitions keyed by role: tier name for workers, "api" for the API."""
    result = {}
    for logical_id, td in _resources(template, "AWS::ECS::TaskDefinition").items():
        (container,) = td["Properties"]["ContainerDefinitions"]
        key = _env(container).get("TIER", "api" if container["Name"] == "Api" else None)
        assert key is not None, logical_id
        result[key] = {"id": logical_id, **td}
    return result


def _services(template: Template) -> dict[str, tuple[str, dict]]:
    """ECS services keyed like _task_definitions, with their logical IDs."""
    by_task_def = {td["id"]: key for key, td in _task_definitions(template).items()}
    return {by_task_def[s["Properties"]["TaskDefinition"]["Ref"]]: (logical_id, s)
            for logical_id, s in _resources(template, "AWS::ECS::Service").items()}


def _role_statements(template: Template, key: str) -> list[dict]:
    """Every IAM statement attached to the task role of `key` (tier name or "api")."""
    task_def = _task_definitions(template)[key]
    role_id = task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    statements = []
    for policy in _resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _resource_list(statement: dict) -> list:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def _scalable_target_of(template: Template, service_id: str) -> str:
    for logical_id, target in _resources(template,
                                         "AWS::ApplicationAutoScaling::ScalableTarget").items():
        if _refers_to(target["Properties"]["ResourceId"], service_id):
            return logical_id
    raise AssertionError(f"no scalable target for {service_id}")


def _policies_of(template: Template, target_id: str) -> list[dict]:
    return [p["Properties"] for p in
            _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
            if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}]


# --- cluster ---------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_cluster_has_container_insights_and_fargate_capacity_providers(templates, env):
    template = templates[env]
    template.resource_count_is("AWS::ECS::Cluster", 1)
    template.has_resource_properties("AWS::ECS::Cluster", {
        "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]})
    template.has_resource_properties("AWS::ECS::ClusterCapacityProviderAssociations", {
        "CapacityProviders": Match.array_equals(["FARGATE", "FARGATE_SPOT"])})


@pytest.mark.parametrize("env", ENVS)
def test_services_are_created_after_the_capacity_provider_association(templates, env):
    template = templates[env]
    (association_id,) = _resources(template, "AWS::ECS::ClusterCapacityProviderAssociations")
    for logical_id, service in _resources(template, "AWS::ECS::Service").items():
        assert association_id in service.get("DependsOn", []), logical_id


# --- worker services -------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_one_worker_service_per_service_tier_and_an_api_service(templates, stages, env):
    config = stages[env].config
    services = _services(templates[env])
    assert set(services) == {t.name for t in config.service_tiers} | {"api"}
    assert not {t.name for t in config.batch_tiers} & set(services)
    for tier in config.service_tiers:
        assert services[tier.name][1]["Properties"]["ServiceName"] == f"jobfleet-{env}-{tier.name}-workers"
    assert set(stages[env].compute.worker_services) == {t.name for t in config.service_tiers}


@pytest.mark.parametrize("env", ENVS)
def test_every_service_private_no_public_ip_with_circuit_breaker_and_no_desired_count(templates, env):
    for key, (_, service) in _services(templates[env]).items():
        props = service["Properties"]
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED", key
        assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True, "Rollback": True}, key
        # The scaling policies own the task count: a deploy must not reset it.
        assert "DesiredCount" not in props, key
        assert props["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100, key


@pytest.mark.parametrize("env", ENVS)
def test_services_run_in_the_private_subnets(templates, stages, env):
    network = Template.from_stack(stages[env].network).to_json()["Resources"]
    private = {logical_id for logical_id, r in network.items()
               if r["Type"] == "AWS::EC2::Subnet"
               and {"Key": "aws-cdk:subnet-type", "Value": "Private"} in r["Properties"]["Tags"]}
    for key, (_, service) in _services(templates[env]).items():
        subnets = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
        assert len(subnets) == len(private), key
        for subnet in subnets:
            assert any(_refers_to(subnet, subnet_id) for subnet_id in private), (key, subnet)


@pytest.mark.parametrize("env", ENVS)
def test_worker_container_follows_the_worker_contract(templates, stateful, stages, env):
    config = stages[env].config
    queue_ids = _queue_ids(stateful[env], env)
    task_defs = _task_definitions(templates[env])
    for tier in config.service_tiers:
        props = task_defs[tier.name]["Properties"]
        assert (props["Cpu"], props["Memory"]) == (str(tier.cpu), str(tier.memory_mib))
        (container,) = props["ContainerDefinitions"]
        assert container["Command"] == ["python", "-m", "worker", "run"]
        assert container["HealthCheck"]["Command"] == ["CMD", "python", "-m", "worker", "health"]
        env_vars = _env(container)
        assert _refers_to(env_vars["QUEUE_URL"], queue_ids[tier.name])
        assert _refers_to(env_vars["DLQ_URL"], queue_ids[f"{tier.name}-dlq"])
        assert env_vars["MAX_RECEIVE_COUNT"] == str(tier.max_receive_count)
        assert env_vars["WORKER_CONCURRENCY"] == str(tier.concurrency)
        assert env_vars["WORKER_HANDLERS"] == "worker.examples"
        assert env_vars["JOB_MAX_SECONDS"] == str(tier.max_job_seconds)
        assert env_vars["HEALTH_FILE"] == "/tmp/worker-health"
        assert "JobStatus" in json.dumps(env_vars["STATUS_TABLE"])
        assert env_vars["STATUS_TTL_DAYS"] == str(config.status.ttl_days)
        # The worker's own drain budget ends before ECS's SIGKILL.
        drain = int(env_vars["WORKER_STOP_TIMEOUT_SECONDS"])
        assert 0 < drain < container["StopTimeout"] == tier.stop_timeout_seconds <= 120


@pytest.mark.parametrize("env", ENVS)
def test_every_container_is_hardened_and_logs_with_retention(templates, stages, env):
    template = templates[env]
    retention = stages[env].config.app.log_retention_days
    log_groups = _resources(template, "AWS::Logs::LogGroup")
    task_defs = _task_definitions(template)
    assert len(task_defs) == len(stages[env].config.service_tiers) + 1
    for key, td in task_defs.items():
        props = td["Properties"]
        assert props["RequiresCompatibilities"] == ["FARGATE"]
        (container,) = props["ContainerDefinitions"]
        assert container["ReadonlyRootFilesystem"] is True, key
        assert container["User"] == "10001", key
        assert 0 < container["StopTimeout"] <= 120, key
        # /tmp is the one writable path, on a task-scoped volume.
        (mount,) = container["MountPoints"]
        assert mount["ContainerPath"] == "/tmp" and mount["ReadOnly"] is False
        assert {"Name": mount["SourceVolume"]} in props["Volumes"]
        logging = container["LogConfiguration"]
        assert logging["LogDriver"] == "awslogs", key
        group_id = logging["Options"]["awslogs-group"]["Ref"]
        assert log_groups[group_id]["Properties"]["RetentionInDays"] == retention, key
    assert all(g["Properties"]["RetentionInDays"] == retention for g in log_groups.values())


@pytest.mark.parametrize("env", ENVS)
def test_fargate_spot_share_per_tier(templates, stages, env):
    services = _services(templates[env])
    for tier in stages[env].config.service_tiers:
        strategy = services[tier.name][1]["Properties"]["CapacityProviderStrategy"]
        assert "LaunchType" not in services[tier.name][1]["Properties"]
        if tier.fargate_spot_weight:
            assert strategy == [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1},
                                {"CapacityProvider": "FARGATE_SPOT",
                                 "Weight": tier.fargate_spot_weight}]
        else:
            assert strategy == [{"CapacityProvider": "FARGATE", "Weight": 1}]


def test_prod_has_a_spot_tier_so_the_spot_branch_is_exercised(stages):
    assert any(t.fargate_spot_weight for t in stages["prod"].config.service_tiers)


# --- worker scaling --------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_backlog_per_task_target_tracking_per_tier(templates, stateful, stages, env):
    template = templates[env]
    queue_ids = _queue_ids(stateful[env], env)
    services = _services(template)
    cluster_id = next(iter(_resources(template, "AWS::ECS::Cluster")))
    for tier in stages[env].config.service_tiers:
        service_id = services[tier.name][0]
        target_id = _scalable_target_of(template, service_id)
        target = _resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")[target_id]
        assert target["Properties"]["MinCapacity"] == tier.min_tasks
        assert target["Properties"]["MaxCapacity"] == tier.max_tasks
        assert target["Properties"]["ScalableDimension"] == "ecs:service:DesiredCount"

        (tracking,) = [p for p in _policies_of(template, target_id)
                       if p["PolicyType"] == "TargetTrackingScaling"]
        config = tracking["TargetTrackingScalingPolicyConfiguration"]
        assert config["TargetValue"] == tier.backlog_per_task_target
        # Target tracking only scales out: its scale-in acted on data from before a wake-up and
        # on visible messages only; the step policies below scale in.
        assert config["DisableScaleIn"] is True
        assert "ScaleInCooldown" not in config
        assert config["ScaleOutCooldown"] == 60
        assert "PredefinedMetricSpecification" not in config
        metrics = {m["Id"]: m for m in config["CustomizedMetricSpecification"]["Metrics"]}
        assert set(metrics) == {"m1", "m2", "m3", "tasks", "e1"}
        visible, running, ratio = metrics["m1"], metrics["m2"], metrics["e1"]
        desired, tasks = metrics["m3"], metrics["tasks"]
        assert visible["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS"
        assert visible["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        (queue_dim,) = visible["MetricStat"]["Metric"]["Dimensions"]
        assert queue_dim["Name"] == "QueueName"
        assert _refers_to(queue_dim["Value"], queue_ids[tier.name])
        assert not _refers_to(queue_dim["Value"], queue_ids[f"{tier.name}-dlq"])
        assert running["MetricStat"]["Metric"]["Namespace"] == "ECS/ContainerInsights"
        assert running["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
        assert {d["Name"]: d["Value"] for d in running["MetricStat"]["Metric"]["Dimensions"]} == {
            "ClusterName": {"Ref": cluster_id},
            "ServiceName": {"Fn::GetAtt": [service_id, "Name"]}}
        # The tasks are MAX(running, desired): tasks still starting count from the minute they
        # are wanted, so target tracking does not add more for the same backlog meanwhile.
        assert desired["MetricStat"]["Metric"] == {
            **running["MetricStat"]["Metric"], "MetricName": "DesiredTaskCount"}
        assert desired["MetricStat"]["Stat"] == "Maximum"
        assert running["MetricStat"]["Stat"] == "Average"
        assert tasks["Expression"] == TASKS_EXPRESSION == "IF(m3 > m2, m3, m2)"
        assert ratio["Expression"] == BACKLOG_PER_TASK_EXPRESSION == \
            "m1 / IF(tasks >= 1, tasks, 1)"
        # Only the ratio is the tracked metric.
        assert ratio["ReturnData"] is True
        assert not any(metrics[i]["ReturnData"] for i in ("m1", "m2", "m3", "tasks"))


@pytest.mark.parametrize("env", ENVS)
def test_no_cpu_or_other_policy_fights_the_worker_queue_policy(templates, stages, env):
    template = templates[env]
    services = _services(template)
    for tier in stages[env].config.service_tiers:
        policies = _policies_of(template, _scalable_target_of(template, services[tier.name][0]))
        kinds = sorted(p["PolicyType"] for p in policies)
        # min 0: wake-up, scale-in, scale-to-zero steps; otherwise the scale-in step only.
        steps = 3 if tier.min_tasks == 0 else 1
        assert kinds == ["StepScaling"] * steps + ["TargetTrackingScaling"], tier.name


@pytest.mark.parametrize("env", ENVS)
def test_wake_up_from_zero_exactly_on_min_zero_tiers(templates, stateful, stages, env):
    template = templates[env]
    queue_ids = _queue_ids(stateful[env], env)
    services = _services(template)
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    policies = _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    woken = set()
    for alarm in alarms.values():
        props = alarm["Properties"]
        step_ids = [a["Ref"] for a in props.get("AlarmActions", [])
                    if policies.get(a.get("Ref", ""), {}).get("Properties", {}).get("PolicyType")
                    == "StepScaling"]
        if not step_ids or not props["AlarmName"].endswith("-wake-up"):
            continue
        (step_id,) = step_ids
        step = policies[step_id]["Properties"]["StepScalingPolicyConfiguration"]
        assert step["AdjustmentType"] == "ExactCapacity"
        assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
        metrics = {m["Id"]: m for m in props["Metrics"]}
        (expression,) = [m for m in metrics.values() if m.get("ReturnData", True) and "Expression" in m]
        assert expression["Expression"] == WAKE_UP_EXPRESSION == \
            "IF(FILL(visible, 0) > 0 AND FILL(desired, 0) < 1, 1, 0)"
        assert metrics["visible"]["MetricStat"]["Metric"]["MetricName"] == \
            "ApproximateNumberOfMessagesVisible"
        assert metrics["desired"]["MetricStat"]["Metric"]["MetricName"] == "DesiredTaskCount"
        assert metrics["visible"]["MetricStat"]["Period"] == 60
        assert props["Threshold"] == 1
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["EvaluationPeriods"] == 1
        assert props["TreatMissingData"] == "notBreaching"
        # The alarm watches one tier's queue and scales that tier's service.
        (tier,) = [t for t in stages[env].config.service_tiers
                   if _refers_to(metrics["visible"], queue_ids[t.name])]
        service_id = services[tier.name][0]
        assert _refers_to(metrics["desired"], service_id)
        assert policies[step_id]["Properties"]["ScalingTargetId"] == {
            "Ref": _scalable_target_of(template, service_id)}
        woken.add(tier.name)
    assert woken == {t.name for t in stages[env].config.service_tiers if t.min_tasks == 0}


def _queue_metric(metric_id: str, metric_name: str, queue: Capture) -> Matcher:
    return Match.object_like({"Id": metric_id, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": "AWS/SQS", "MetricName": metric_name,
                   "Dimensions": [{"Name": "QueueName", "Value": queue}]},
        "Period": 60, "Stat": "Maximum"}})


def _scaling_alarm(template: Template, name: str, queue_id: str, service_id: str,
                   expression: Capture, action: Capture) -> None:
    """The alarm `name` watches the tier queue's visible and in-flight messages (per-minute
    maximum) and the tier service's desired count, and calls one step policy."""
    visible_queue, in_flight_queue = Capture(), Capture()
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": name,
        "EvaluationPeriods": SCALE_IN_MINUTES, "DatapointsToAlarm": SCALE_IN_MINUTES,
        "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": action}],
        "Metrics": Match.array_with([
            Match.object_like({"Expression": expression, "ReturnData": True}),
            _queue_metric("visible", "ApproximateNumberOfMessagesVisible", visible_queue),
            _queue_metric("in_flight", "ApproximateNumberOfMessagesNotVisible", in_flight_queue),
            Match.object_like({"Id": "desired", "MetricStat": Match.object_like({
                "Metric": {"Namespace": "ECS/ContainerInsights", "MetricName": "DesiredTaskCount",
                           "Dimensions": [
                               {"Name": "ClusterName", "Value": {"Ref": Match.any_value()}},
                               {"Name": "ServiceName",
                                "Value": {"Fn::GetAtt": [service_id, "Name"]}}]},
                "Stat": "Maximum"})}),
        ]),
    })
    # The tier's own queue, not its DLQ.
    assert _refers_to(visible_queue.as_object(), queue_id)
    assert _refers_to(in_flight_queue.as_object(), queue_id)


@pytest.mark.parametrize("env", ENVS)
def test_scale_in_steps_down_on_work_per_task_including_in_flight(templates, stateful, stages,
                                                                   env):
    template = templates[env]
    config = stages[env].config
    queue_ids = _queue_ids(stateful[env], env)
    services = _services(template)
    for tier in config.service_tiers:
        service_id = services[tier.name][0]
        expression, action = Capture(), Capture()
        _scaling_alarm(template, config.resource_name(tier.name, "scale-in"),
                       queue_ids[tier.name], service_id, expression, action)
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": config.resource_name(tier.name, "scale-in"),
            "ComparisonOperator": "LessThanThreshold", "Threshold": 0.5,
            "Metrics": Match.array_with([Match.object_like({
                "Id": "running", "MetricStat": Match.object_like({"Metric": Match.object_like({
                    "MetricName": "RunningTaskCount"})})})])})
        # Waiting plus in-flight work per task, over the target; tasks are MAX(running,
        # desired) as for scale-out. Counted only while the service wants more than
        # max(min_tasks, 1) tasks (a min 0 tier's last task goes only through the scale-to-zero
        # alarm; the divisor is then at least 2).
        text = expression.as_string()
        assert ("(FILL(visible, 0) + FILL(in_flight, 0)) / IF(FILL(running, 0) > FILL(desired, 0), "
                "FILL(running, 0), FILL(desired, 0))") in text
        assert f"FILL(desired, 0) > {max(tier.min_tasks, 1)} AND" in text
        assert f" / {tier.backlog_per_task_target:g}, 1)" in text
        # Missing queue data never looks like an idle queue.
        assert "FILL(visible, -1) >= 0 AND FILL(in_flight, -1) >= 0" in text
        policy = _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")[action.as_string()]
        assert policy["Properties"]["ScalingTargetId"] == {
            "Ref": _scalable_target_of(template, service_id)}
        # Gradual: a quarter of the tasks below half the target, half below a quarter; never all.
        assert policy["Properties"]["StepScalingPolicyConfiguration"] == {
            "AdjustmentType": "PercentChangeInCapacity", "MinAdjustmentMagnitude": 1,
            "MetricAggregationType": "Maximum", "Cooldown": 300,
            "StepAdjustments": [
                {"MetricIntervalLowerBound": -0.25, "MetricIntervalUpperBound": 0,
                 "ScalingAdjustment": -25},
                {"MetricIntervalUpperBound": -0.25, "ScalingAdjustment": -50}]}


@pytest.mark.parametrize("env", ENVS)
def test_scale_to_zero_only_with_nothing_waiting_or_in_flight_on_min_zero_tiers(
        templates, stateful, stages, env):
    template = templates[env]
    config = stages[env].config
    queue_ids = _queue_ids(stateful[env], env)
    services = _services(template)
    names = {a["Properties"]["AlarmName"]
             for a in _resources(template, "AWS::CloudWatch::Alarm").values()}
    for tier in config.service_tiers:
        name = config.resource_name(tier.name, "scale-to-zero")
        assert (name in names) == (tier.min_tasks == 0), tier.name
        if tier.min_tasks != 0:
            continue
        service_id = services[tier.name][0]
        expression, action = Capture(), Capture()
        _scaling_alarm(template, name, queue_ids[tier.name], service_id, expression, action)
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": name, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1})
        # Every minute: nothing visible, nothing in flight (no data is not "nothing"), and the
        # service wanted exactly one task, so minutes from before a wake-up (0 wanted) never count.
        assert expression.as_string() == ("IF(FILL(visible, -1) == 0 AND FILL(in_flight, -1) == 0 "
                                          "AND FILL(desired, 0) == 1, 1, 0)")
        policy = _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")[action.as_string()]
        assert policy["Properties"]["ScalingTargetId"] == {
            "Ref": _scalable_target_of(template, service_id)}
        assert policy["Properties"]["StepScalingPolicyConfiguration"] == {
            "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Maximum",
            "Cooldown": 300,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": -1}]}


def test_every_environment_has_a_min_zero_and_an_always_on_tier(stages):
    for stage in stages.values():
        mins = {t.min_tasks for t in stage.config.service_tiers}
        assert 0 in mins and any(m > 0 for m in mins)


def test_worked_example_latency_60s_job_2s_gives_30_messages_per_task(stages):
    import dataclasses
    tier = dataclasses.replace(stages["dev"].config.tier("critical"), latency_objective_seconds=60,
                               expected_job_seconds=2, concurrency=1)
    assert tier.backlog_per_task_target == 30


# --- IAM -------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_worker_role_touches_only_its_own_queues(templates, stateful, stages, env):
    template = templates[env]
    queue_ids = _queue_ids(stateful[env], env)
    for tier in stages[env].config.service_tiers:
        own_queue, own_dlq = queue_ids[tier.name], queue_ids[f"{tier.name}-dlq"]
        others = [qid for name, qid in queue_ids.items() if qid not in (own_queue, own_dlq)]
        statements = _role_statements(template, tier.name)
        sends, receives = set(), set()
        for statement in statements:
            assert statement["Effect"] == "Allow"
            for resource in _resource_list(statement):
                assert not any(_refers_to(resource, other) for other in others), (tier.name, resource)
                target = own_queue if _refers_to(resource, own_queue) else \
                    own_dlq if _refers_to(resource, own_dlq) else None
                if "sqs:SendMessage" in _actions(statement):
                    sends.add(target)
                if _actions(statement) & SQS_READ_OR_DELETE:
                    receives.add(target)
        assert sends == {own_queue, own_dlq}, tier.name
        assert receives == {own_queue}, tier.name
        assert not any("sqs:PurgeQueue" in _actions(s) or "sqs:*" in _actions(s) for s in statements)


@pytest.mark.parametrize("env", ENVS)
def test_worker_may_protect_only_tasks_of_its_cluster(templates, stages, env):
    template = templates[env]
    cluster_id = next(iter(_resources(template, "AWS::ECS::Cluster")))
    for tier in stages[env].config.service_tiers:
        (protection,) = [s for s in _role_statements(template, tier.name)
                         if _actions(s) & {"ecs:UpdateTaskProtection"}]
        assert _actions(protection) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
        (resource,) = _resource_list(protection)
        parts = resource["Fn::Join"][1]
        assert {"Ref": cluster_id} in parts
        assert any(isinstance(p, str) and p.endswith(":task/") for p in parts)
        assert parts[-1] == "/*"


@pytest.mark.parametrize("env", ENVS)
def test_worker_status_table_access_is_get_and_update_only(templates, stages, env):
    for tier in stages[env].config.service_tiers:
        dynamo = set().union(*(_actions(s) for s in _role_statements(templates[env], tier.name)
                               if any(a.startswith("dynamodb:") for a in _actions(s))))
        assert dynamo == {"dynamodb:GetItem", "dynamodb:UpdateItem"}


@pytest.mark.parametrize("env", ENVS)
def test_api_role_may_send_to_tier_queues_but_not_receive_or_delete(templates, stateful, stages, env):
    template = templates[env]
    queue_ids = _queue_ids(stateful[env], env)
    statements = _role_statements(template, "api")
    sent_to = set()
    for statement in statements:
        actions = _actions(statement)
        assert not actions & SQS_READ_OR_DELETE, actions
        assert not any(a in ("sqs:*", "*") for a in actions)
        if "sqs:SendMessage" in actions:
            for resource in _resource_list(statement):
                sent_to |= {name for name, qid in queue_ids.items() if _refers_to(resource, qid)}
    assert sent_to == {t.name for t in stages[env].config.tiers}
    dynamo = set().union(*(_actions(s) for s in statements
                           if any(a.startswith("dynamodb:") for a in _actions(s))))
    assert dynamo == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem",
                      "dynamodb:DeleteItem"}


def test_prod_roles_may_use_the_queue_key(templates, stateful):
    (key_id,) = stateful["prod"].find_resources("AWS::KMS::Key")
    for key in ("api", "critical", "standard"):
        kms = [s for s in _role_statements(templates["prod"], key)
               if any(a.startswith("kms:") for a in _actions(s))]
        assert kms and all(_refers_to(s["Resource"], key_id) for s in kms), key


# --- API service -----------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_api_container_wiring(templates, stateful, stages, env):
    config = stages[env].config
    queue_ids = _queue_ids(stateful[env], env)
    (container,) = _task_definitions(templates[env])["api"]["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["python", "-m", "worker", "api"]
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    env_vars = _env(container)
    assert env_vars["PORT"] == "8080"
    assert env_vars["MAX_PAYLOAD_BYTES"] == str(config.api.max_payload_bytes)
    # Batch tiers are capped by AWS Batch's SubmitJob size, tighter than the API-wide limit.
    assert json.loads(env_vars["TIER_MAX_PAYLOAD_BYTES"]) == {
        t.name: min(config.api.max_payload_bytes, config.batch.max_payload_bytes) for t in config.batch_tiers}
    assert config.batch_tiers and config.tier_payload_limits()["batch"] < config.api.max_payload_bytes
    assert json.loads(env_vars["JOB_TYPES"]) == dict(config.job_types)
    # TIER_QUEUES is JSON assembled at deploy time: {"<tier>": "<queue url>", ...}.
    parts = env_vars["TIER_QUEUES"]["Fn::Join"][1]
    for tier in config.tiers:
        index = next(i for i, p in enumerate(parts) if isinstance(p, str) and f'"{tier.name}":"' in p)
        assert _refers_to(parts[index + 1], queue_ids[tier.name])
        assert not _refers_to(parts[index + 1], queue_ids[f"{tier.name}-dlq"])
    assert "JobStatus" in json.dumps(env_vars["STATUS_TABLE"])
    assert env_vars["STATUS_TTL_DAYS"] == str(config.status.ttl_days)


@pytest.mark.parametrize("env", ENVS)
def test_api_autoscaling_on_cpu_and_requests(templates, stages, env):
    api = stages[env].config.api
    template = templates[env]
    service_id = _services(template)["api"][0]
    target_id = _scalable_target_of(template, service_id)
    target = _resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")[target_id]
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        api.min_tasks, api.max_tasks)
    by_metric = {p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
                 ["PredefinedMetricType"]: p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
                 for p in _policies_of(template, target_id)}
    expected = {"ECSServiceAverageCPUUtilization": api.cpu_target_percent}
    if api.requests_per_target:
        expected["ALBRequestCountPerTarget"] = api.requests_per_target
    assert by_metric == expected


@pytest.mark.parametrize("env", ENVS)
def test_api_target_group_health_check_from_config(templates, stages, env):
    templates[env].has_resource_properties("AWS::ElasticLoadBalancingV2::TargetGroup", {
        "HealthCheckPath": stages[env].config.api.health_check_path,
        "Port": 8080, "Protocol": "HTTP", "TargetType": "ip"})


@pytest.mark.parametrize("env", ENVS)
def test_api_tasks_admit_only_the_load_balancer(templates, env):
    template = templates[env]
    (alb,) = _resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    (alb_sg,) = [sg["Fn::GetAtt"][0] for sg in alb["Properties"]["SecurityGroups"]]
    ingress = _resources(template, "AWS::EC2::SecurityGroupIngress").values()
    assert ingress and all(i["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [alb_sg, "GroupId"]}
                           and i["Properties"]["FromPort"] == 8080 for i in ingress)
    for logical_id, sg in _resources(template, "AWS::EC2::SecurityGroup").items():
        if logical_id != alb_sg:
            assert not sg["Properties"].get("SecurityGroupIngress"), logical_id


# --- load balancer ---------------------------------------------------------------------------

def _listeners(template: Template) -> dict[int, dict]:
    return {listener["Properties"]["Port"]: listener["Properties"]
            for listener in _resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()}


@pytest.mark.parametrize("env", ENVS)
def test_alb_internet_facing_with_attributes_from_config(templates, stages, env):
    api = stages[env].config.api
    (alb,) = _resources(templates[env], "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internet-facing"
    attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == str(api.deletion_protection).lower()
    assert attributes["idle_timeout.timeout_seconds"] == str(api.idle_timeout_seconds)
    assert attributes["access_logs.s3.enabled"] == "true"
    (bucket_id,) = _resources(templates[env], "AWS::S3::Bucket")
    assert attributes["access_logs.s3.bucket"] == {"Ref": bucket_id}


def test_prod_alb_has_deletion_protection(stages):
    assert stages["prod"].config.api.deletion_protection is True


def test_prod_https_with_deploy_time_certificate_and_redirect(templates, stages):
    assert not stages["prod"].config.api.certificate_arn
    template = templates["prod"]
    parameter = template.to_json()["Parameters"]["ApiCertificateArn"]
    assert parameter["Type"] == "String"
    assert parameter["AllowedPattern"].startswith("^arn:aws")
    listeners = _listeners(template)
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "ApiCertificateArn"}}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    (forward,) = https["DefaultActions"]
    assert forward["Type"] == "forward"
    (redirect,) = listeners[80]["DefaultActions"]
    assert redirect == {"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_plain_http_only_where_the_environment_opts_in(templates, stages, env):
    assert stages[env].config.api.allow_plain_http and not stages[env].config.api.certificate_arn
    template = templates[env]
    assert "ApiCertificateArn" not in template.to_json().get("Parameters", {})
    listeners = _listeners(template)
    assert set(listeners) == {80}
    assert listeners[80]["Protocol"] == "HTTP"
    (forward,) = listeners[80]["DefaultActions"]
    assert forward["Type"] == "forward"


@pytest.mark.parametrize("env", ENVS)
def test_access_log_bucket_encrypted_tls_only_private_and_expiring(templates, stages, env):
    template = templates[env]
    ((bucket_id, bucket),) = _resources(template, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == stages[env].config.api.access_log_expiry_days
    ((policy),) = [p["Properties"] for p in _resources(template, "AWS::S3::BucketPolicy").values()
                   if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    statements = policy["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)
    delivery = [s for s in statements if s["Effect"] == "Allow" and s["Action"] == "s3:PutObject"]
    principals = [s["Principal"] for s in delivery]
    assert {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"} in principals
    # The legacy regional ELB account: looked up on AWS::Region at deploy time when the
    # environment names no region, resolved at synth when it does.
    region = stages[env].config.app.region
    if region:
        account = RegionInfo.get(region).elbv2_account
        assert any(account in json.dumps(p) for p in principals)
    else:
        assert any("Fn::FindInMap" in json.dumps(p) and "AWS::Region" in json.dumps(p)
                   for p in principals)
    for statement in delivery:
        assert "/alb/AWSLogs/" in json.dumps(statement["Resource"])


def test_access_log_mapping_knows_the_us_east_1_elb_account(templates):
    mappings = templates["dev"].to_json()["Mappings"]
    (mapping,) = [m for m in mappings.values() if "us-east-1" in m]
    assert mapping["us-east-1"]["Account"] == "127311923021"


@pytest.mark.parametrize(("env", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_bucket_and_log_groups_follow_the_removal_policy(templates, env, policy):
    for rtype in ("AWS::S3::Bucket", "AWS::Logs::LogGroup"):
        for resource in _resources(templates[env], rtype).values():
            assert resource["DeletionPolicy"] == policy, rtype


def test_operations_contract_attributes(stages):
    compute = stages["dev"].compute
    for name in ("cluster", "load_balancer", "api_service", "api_target_group", "worker_services"):
        assert getattr(compute, name) is not None, name


# --- variants: certificate in the config, user's own API image --------------------------------

@pytest.fixture(scope="module")
def certificate_variant(stages):
    """Compute template of prod with a certificate ARN and an API image set in the config."""
    import dataclasses

    import aws_cdk as cdk

    from cdk_app.app import feature_flags
    from cdk_app.stage import JobFleetStage

    config = stages["prod"].config
    api = dataclasses.replace(
        config.api, image="public.ecr.aws/example/job-api:1.2.3",
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-1111-2222-3333-444455556666")
    stage = JobFleetStage(cdk.App(context=feature_flags()), dataclasses.replace(config, api=api))
    return api, Template.from_stack(stage.compute)


def test_configured_certificate_is_used_without_a_parameter(certificate_variant):
    api, template = certificate_variant
    assert "ApiCertificateArn" not in template.to_json().get("Parameters", {})
    listeners = _listeners(template)
    assert listeners[443]["Certificates"] == [{"CertificateArn": api.certificate_arn}]
    assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"


def test_configured_api_image_replaces_the_reference_api(certificate_variant):
    api, template = certificate_variant
    (container,) = _task_definitions(template)["api"]["Properties"]["ContainerDefinitions"]
    assert container["Image"] == api.image
    assert "Command" not in container


@pytest.mark.parametrize("env", ENVS)
def test_deployment_alarms_of_the_service_itself_roll_bad_deployments_back(templates, stages, env):
    config = stages[env].config
    alarms = {a["Properties"]["AlarmName"]: a
              for a in _resources(templates[env], "AWS::CloudWatch::Alarm").values()}
    expected = {"api": [config.resource_name("api", "deployment-5xx")]}
    for tier in config.service_tiers:
        expected[tier.name] = [config.resource_name(tier.name, "deployment-failed-jobs"),
                               config.resource_name(tier.name, "deployment-memory")]
    services = _services(templates[env])
    assert services.keys() == expected.keys()
    for key, (_, service) in services.items():
        deployment = service["Properties"]["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert deployment["Alarms"] == {"AlarmNames": expected[key], "Enable": True, "Rollback": True}
        for name in expected[key]:
            assert name in alarms, f"{key}: deployment alarm {name} is not in the service's stack"
    failed_jobs = alarms[config.resource_name("critical", "deployment-failed-jobs")]["Properties"]
    assert failed_jobs["Threshold"] == config.alarms.deployment_failed_jobs_percent
    (expression,) = [m for m in failed_jobs["Metrics"] if "Expression" in m]
    assert expression["Expression"].startswith("IF((") and ">= 5" in expression["Expression"]
    jobs = {m["MetricStat"]["Metric"]["MetricName"] for m in failed_jobs["Metrics"] if "MetricStat" in m}
    assert jobs == {"JobsFailed", "JobsSucceeded"}


# --- wake from zero (api.wake_from_zero) -----------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_api_may_wake_only_the_services_that_scale_to_zero(templates, stages, env):
    """ecs:DescribeServices / ecs:UpdateService on exactly the min-0 tiers' services, by ARN."""
    config = stages[env].config
    template = templates[env]
    services = _services(template)
    sleepers = {t.name for t in config.service_tiers if t.min_tasks == 0}
    assert sleepers and config.api.wake_from_zero
    ecs_statements = [s for s in _role_statements(template, "api")
                      if any(a.startswith("ecs:") for a in _actions(s))]
    assert len(ecs_statements) == 1
    (statement,) = ecs_statements
    assert _actions(statement) == {"ecs:DescribeServices", "ecs:UpdateService"}
    assert "Condition" not in statement and statement["Effect"] == "Allow"
    # Ref of an AWS::ECS::Service is its ARN: one per sleeping tier, nothing else.
    assert sorted(r["Ref"] for r in _resource_list(statement)) == sorted(
        services[tier][0] for tier in sleepers)
    # No worker role may change a service.
    for tier in config.service_tiers:
        assert not any("ecs:UpdateService" in _actions(s) for s in _role_statements(template, tier.name))
    (container,) = _task_definitions(template)["api"]["Properties"]["ContainerDefinitions"]
    env_vars = _env(container)
    assert env_vars["WAKE_INTERVAL_SECONDS"] == str(config.api.wake_interval_seconds)
    wake = json.dumps(env_vars["WAKE_SERVICES"])
    assert all(f'\\"{tier}\\":{{\\"cluster\\":' in wake for tier in sleepers)
    assert not any(f'\\"{t.name}\\":' in wake for t in config.service_tiers if t.name not in sleepers)
