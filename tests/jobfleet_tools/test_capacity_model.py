"""The simulator models what synth produces: its numbers are read back from the templates."""

from __future__ import annotations

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from jobfleet_tools.capacity.model import (
    METRIC_PERIOD_SECONDS,
    SCALE_IN_BELOW_RATIO,
    SCALE_IN_COOLDOWN_SECONDS,
    SCALE_IN_MINUTES,
    SCALE_IN_STEPS,
    SCALE_OUT_COOLDOWN_SECONDS,
    SCALE_TO_ZERO_ADJUSTMENT,
    WAKE_STEP_COOLDOWN_SECONDS,
    BatchPolicy,
    ServicePolicy,
)

ENVS = ["dev", "staging", "prod"]


def _resource(stack: Stack, construct) -> dict:
    logical_id = stack.get_logical_id(construct.node.default_child)
    return Template.from_stack(stack).to_json()["Resources"][logical_id]["Properties"]


def _alarm_and_step(stack: Stack, template: dict, alarm) -> tuple[dict, dict]:
    """An alarm's properties and those of the one step policy it calls."""
    props = template[stack.get_logical_id(alarm.node.default_child)]["Properties"]
    (action,) = props["AlarmActions"]
    return props, template[action["Ref"]]["Properties"]["StepScalingPolicyConfiguration"]


def _metric_periods(alarm: dict) -> set[int]:
    return {q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q}


def _expression(alarm: dict) -> str:
    (expression,) = [q["Expression"] for q in alarm["Metrics"] if q.get("ReturnData", True)]
    return expression


@pytest.mark.parametrize("env", ENVS)
def test_service_policy_matches_the_synthesized_scaling(stages, env):
    stage = stages[env]
    compute = stage.compute
    template = Template.from_stack(compute).to_json()["Resources"]
    for tier in stage.config.service_tiers:
        policy = ServicePolicy.from_config(stage.config, tier)
        scaling = compute.worker_scaling[tier.name]
        target = _resource(compute, scaling.target)
        assert (target["MinCapacity"], target["MaxCapacity"]) == (policy.min_tasks, policy.max_tasks)
        tracking = template[compute.get_logical_id(scaling.backlog_policy)]["Properties"]
        spec = tracking["TargetTrackingScalingPolicyConfiguration"]
        assert spec["TargetValue"] == policy.target
        assert spec["ScaleOutCooldown"] == SCALE_OUT_COOLDOWN_SECONDS
        # The simulator's target tracking only scales out.
        assert spec["DisableScaleIn"] is True
        # ...on visible (average) / max(running (average), desired (maximum), 1): _Datapoint.tasks.
        queries = {q["Id"]: q for q in spec["CustomizedMetricSpecification"]["Metrics"]}
        assert {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"])
                for q in queries.values() if "MetricStat" in q} == {
            ("ApproximateNumberOfMessagesVisible", "Average"), ("RunningTaskCount", "Average"),
            ("DesiredTaskCount", "Maximum")}
        assert queries["tasks"]["Expression"] == "IF(m3 > m2, m3, m2)"
        assert queries["e1"]["Expression"] == "m1 / IF(tasks >= 1, tasks, 1)"

        alarm, step = _alarm_and_step(compute, template, scaling.scale_in_alarm)
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == SCALE_IN_MINUTES
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
        assert alarm["Threshold"] == SCALE_IN_BELOW_RATIO
        assert _metric_periods(alarm) == {METRIC_PERIOD_SECONDS}
        expression = _expression(alarm)
        assert f"FILL(desired, 0) > {policy.scale_in_floor} AND" in expression
        assert f"/ {policy.target:g}, 1)" in expression
        assert "/ IF(FILL(running, 0) > FILL(desired, 0), FILL(running, 0), FILL(desired, 0))" \
            in expression
        assert step["AdjustmentType"] == "PercentChangeInCapacity"
        assert step["MinAdjustmentMagnitude"] == 1
        assert step["Cooldown"] == SCALE_IN_COOLDOWN_SECONDS
        assert [(a.get("MetricIntervalLowerBound"), a.get("MetricIntervalUpperBound"),
                 a["ScalingAdjustment"]) for a in step["StepAdjustments"]] == list(SCALE_IN_STEPS)

        assert policy.scale_to_zero == (scaling.scale_to_zero_alarm is not None)
        if scaling.scale_to_zero_alarm is not None:
            alarm, step = _alarm_and_step(compute, template, scaling.scale_to_zero_alarm)
            assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == SCALE_IN_MINUTES
            assert _metric_periods(alarm) == {METRIC_PERIOD_SECONDS}
            assert "FILL(desired, 0) == 1" in _expression(alarm)
            assert step["AdjustmentType"] == "ChangeInCapacity"
            assert step["Cooldown"] == SCALE_IN_COOLDOWN_SECONDS
            assert [a["ScalingAdjustment"] for a in step["StepAdjustments"]] == \
                [SCALE_TO_ZERO_ADJUSTMENT]

        assert policy.wake_alarm == (scaling.wake_up_alarm is not None)
        if scaling.wake_up_alarm is None:
            continue
        alarm, step = _alarm_and_step(compute, template, scaling.wake_up_alarm)
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 1
        assert _metric_periods(alarm) == {METRIC_PERIOD_SECONDS}
        assert step["AdjustmentType"] == "ExactCapacity"
        assert step["Cooldown"] == WAKE_STEP_COOLDOWN_SECONDS
        assert [a["ScalingAdjustment"] for a in step["StepAdjustments"]] == [1]


@pytest.mark.parametrize("env", ENVS)
def test_batch_policy_matches_the_synthesized_job_definition_and_compute(stages, env):
    stage = stages[env]
    resources = Template.from_stack(stage.batch).to_json()["Resources"]
    for tier in stage.config.batch_tiers:
        policy = BatchPolicy.from_config(stage.config, tier)
        definitions = [r["Properties"] for r in resources.values()
                       if r["Type"] == "AWS::Batch::JobDefinition"]
        assert {d["RetryStrategy"]["Attempts"] for d in definitions} == {policy.retry_attempts}
        environments = [r["Properties"] for r in resources.values()
                        if r["Type"] == "AWS::Batch::ComputeEnvironment"]
        spot = [e for e in environments if e["ComputeResources"]["Type"] in ("SPOT", "FARGATE_SPOT")]
        assert [e["ComputeResources"]["MaxvCpus"] for e in spot] == [policy.spot_slots * policy.vcpu]
        on_demand = [e for e in environments if e not in spot]
        assert sum(e["ComputeResources"]["MaxvCpus"] for e in on_demand) == \
            pytest.approx(policy.on_demand_slots * policy.vcpu)
