"""Operations stack: alarm topic, every alarm named, thresholded and actioned, the dashboard."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from stacks.constructs import api_alarms, batch_alarms, tier_alarms

ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def templates(stages):
    return {name: Template.from_stack(stage.operations) for name, stage in stages.items()}


def _alarms(template: Template) -> dict[str, dict]:
    """Alarm properties by AlarmName."""
    return {r["Properties"]["AlarmName"]: r["Properties"]
            for r in template.find_resources("AWS::CloudWatch::Alarm").values()}


def _metric_name(alarm: dict) -> str:
    """The alarm's metric name, whether rendered as a single metric or as a labelled metric stat."""
    if "MetricName" in alarm:
        return alarm["MetricName"]
    (stat,) = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    return stat["Metric"]["MetricName"]


def _resolve(stage, value):
    return stage.operations.resolve(value)


def _expected_alarm_names(config) -> set[str]:
    names = set()
    for tier in config.tiers:
        whats = [tier_alarms.DLQ_MESSAGES, tier_alarms.OLDEST_MESSAGE]
        if tier.is_service:
            whats += [tier_alarms.SATURATED, tier_alarms.MEMORY, tier_alarms.TASKS_BELOW_DESIRED]
        else:
            whats += [batch_alarms.FAILED_JOBS, batch_alarms.RUNNABLE_BLOCKED]
        names |= {config.resource_name(tier.name, what) for what in whats}
    names |= {config.resource_name(api_alarms.SCOPE, what) for what in (
        api_alarms.ELB_5XX, api_alarms.TARGET_5XX_RATE, api_alarms.P95_LATENCY,
        api_alarms.UNHEALTHY_HOSTS)}
    names |= {config.resource_name("redrive", what) for what in ("errors", "throttles")}
    return names


@pytest.mark.parametrize("env", ENVS)
def test_every_tier_api_batch_and_redrive_alarm_exists(templates, stages, env):
    assert set(_alarms(templates[env])) == _expected_alarm_names(stages[env].config)


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_has_alarm_and_ok_actions_on_the_topic(templates, stages, env):
    topic = _resolve(stages[env], stages[env].operations.topic.topic_arn)
    for name, alarm in _alarms(templates[env]).items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        assert alarm.get("ActionsEnabled", True) is True, name
        assert alarm["TreatMissingData"] in {"notBreaching", "breaching", "ignore", "missing"}, name


@pytest.mark.parametrize("env", ENVS)
def test_queue_alarm_thresholds_follow_config(templates, stages, env):
    stage = stages[env]
    config, alarms = stage.config, _alarms(templates[env])
    for tier in config.tiers:
        queues = stage.stateful.tier_queues[tier.name]
        dlq = alarms[config.resource_name(tier.name, tier_alarms.DLQ_MESSAGES)]
        assert dlq["Threshold"] == config.alarms.dlq_messages_threshold
        assert dlq["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": _resolve(
            stage, queues.dead_letter_queue.queue_name)}]
        oldest = alarms[config.resource_name(tier.name, tier_alarms.OLDEST_MESSAGE)]
        assert oldest["Threshold"] == tier.latency_objective_seconds
        assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
        assert oldest["Dimensions"] == [{"Name": "QueueName", "Value": _resolve(
            stage, queues.queue.queue_name)}]


@pytest.mark.parametrize("env", ENVS)
def test_service_tier_alarms_follow_config(templates, stages, env):
    stage = stages[env]
    config, alarms = stage.config, _alarms(templates[env])
    for tier in config.service_tiers:
        saturated = alarms[config.resource_name(tier.name, tier_alarms.SATURATED)]
        assert saturated["Threshold"] == tier.backlog_per_task_target
        assert saturated["EvaluationPeriods"] * 60 == 15 * 60
        expression = next(m["Expression"] for m in saturated["Metrics"] if "Expression" in m)
        assert f"running >= {tier.max_tasks}" in expression
        memory = alarms[config.resource_name(tier.name, tier_alarms.MEMORY)]
        assert memory["Threshold"] == config.alarms.memory_utilization_percent
        assert memory["MetricName"] == "MemoryUtilization"
        service_name = _resolve(stage, stage.compute.worker_services[tier.name].service_name)
        assert {"Name": "ServiceName", "Value": service_name} in memory["Dimensions"]
        crash = alarms[config.resource_name(tier.name, tier_alarms.TASKS_BELOW_DESIRED)]
        names = {m["MetricStat"]["Metric"]["MetricName"] for m in crash["Metrics"] if "MetricStat" in m}
        assert names == {"RunningTaskCount", "DesiredTaskCount"}
        assert crash["EvaluationPeriods"] == tier_alarms.CRASH_LOOP_MINUTES
        assert crash["TreatMissingData"] == "ignore"


@pytest.mark.parametrize("env", ENVS)
def test_api_alarm_thresholds_follow_config(templates, stages, env):
    config, alarms = stages[env].config, _alarms(templates[env])

    def alarm(what):
        return alarms[config.resource_name(api_alarms.SCOPE, what)]

    assert alarm(api_alarms.ELB_5XX)["Threshold"] == config.alarms.alb_5xx_threshold
    assert _metric_name(alarm(api_alarms.ELB_5XX)) == "HTTPCode_ELB_5XX_Count"
    rate = alarm(api_alarms.TARGET_5XX_RATE)
    assert rate["Threshold"] == config.alarms.target_5xx_rate_percent
    assert any("Expression" in m for m in rate["Metrics"])
    p95 = alarm(api_alarms.P95_LATENCY)
    assert p95["Threshold"] == config.alarms.p95_response_seconds
    assert _metric_name(p95) == "TargetResponseTime"
    assert "p95" in json.dumps(p95)
    assert _metric_name(alarm(api_alarms.UNHEALTHY_HOSTS)) == "UnHealthyHostCount"


@pytest.mark.parametrize("env", ENVS)
def test_batch_alarms_count_the_failure_rule_and_a_queue_blocked_rule(templates, stages, env):
    stage = stages[env]
    config, alarms, template = stage.config, _alarms(templates[env]), templates[env]
    for tier in config.batch_tiers:
        failed = alarms[config.resource_name(tier.name, batch_alarms.FAILED_JOBS)]
        assert failed["Threshold"] == config.alarms.batch_failed_jobs_threshold
        assert failed["Namespace"] == "AWS/Events"
        failure_rule = stage.batch.tiers[tier.name].failure_rule
        assert failed["Dimensions"] == [{"Name": "RuleName",
                                         "Value": _resolve(stage, failure_rule.rule_name)}]
        blocked = alarms[config.resource_name(tier.name, batch_alarms.RUNNABLE_BLOCKED)]
        blocked_rule = stage.operations.batch_alarms[tier.name].blocked_rule
        assert blocked["Dimensions"] == [{"Name": "RuleName",
                                          "Value": _resolve(stage, blocked_rule.rule_name)}]
        job_queue = stage.batch.tiers[tier.name].job_queue
        template.has_resource_properties("AWS::Events::Rule", {
            "Name": config.resource_name(tier.name, "queue-blocked"),
            "EventPattern": {"source": ["aws.batch"], "detail-type": ["Batch Job Queue Blocked"],
                             "detail": {"jobQueue": [_resolve(stage, job_queue.job_queue_arn)]}},
        })


@pytest.mark.parametrize("env", ENVS)
def test_topic_is_kms_encrypted_with_a_rotating_key_cloudwatch_can_use(templates, env):
    template = templates[env]
    (topic,) = template.find_resources("AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Fn::GetAtt"][0] if "Fn::GetAtt" in key_ref else key_ref["Ref"]
    key = template.to_json()["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}


@pytest.mark.parametrize("env", ENVS)
def test_topic_policy_is_tls_only_and_admits_cloudwatch_alarms(templates, env):
    template = templates[env]
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Effect": "Deny", "Action": "sns:Publish",
                               "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            Match.object_like({"Effect": "Allow", "Action": "sns:Publish",
                               "Principal": {"Service": "cloudwatch.amazonaws.com"}}),
        ])},
    })


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_is_named_per_environment_and_shows_every_tier(templates, stages, env):
    stage = stages[env]
    (dashboard,) = templates[env].find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == stage.config.resource_name()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for tier in stage.config.tiers:
        queues = stage.stateful.tier_queues[tier.name]
        for queue in (queues.queue, queues.dead_letter_queue):
            assert json.dumps(_resolve(stage, queue.queue_name)) in body, (tier.name, queue)
        # The worker's EMF metrics: namespace JobFleet, dimensions Tier and JobType.
        assert f'\\"Tier\\",\\"{tier.name}\\"' in body, tier.name
        for job_type, tier_name in stage.config.job_types.items():
            if tier_name == tier.name:
                assert f'\\"JobType\\",\\"{job_type}\\"' in body, job_type
    for metric in ("HTTPCode_ELB_5XX_Count", "TargetResponseTime", "RunningTaskCount",
                   "JobDuration", "QueueWait", "MemoryPauses", "TriggeredRules"):
        assert metric in body, metric


def test_scheduled_redrive_rule_absent_by_default(templates):
    for template in templates.values():
        rules = template.find_resources("AWS::Events::Rule", {
            "Properties": {"ScheduleExpression": Match.any_value()}})
        assert rules == {}
