"""The simulator models what synth produces: its numbers are read back from the templates."""

from __future__ import annotations

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from jobfleet_tools.capacity.model import (
    METRIC_PERIOD_SECONDS,
    SCALE_IN_COOLDOWN_SECONDS,
    SCALE_OUT_COOLDOWN_SECONDS,
    WAKE_STEP_COOLDOWN_SECONDS,
    BatchPolicy,
    ServicePolicy,
)

ENVS = ["dev", "staging", "prod"]


def _resource(stack: Stack, construct) -> dict:
    logical_id = stack.get_logical_id(construct.node.default_child)
    return Template.from_stack(stack).to_json()["Resources"][logical_id]["Properties"]


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
        assert spec["ScaleInCooldown"] == SCALE_IN_COOLDOWN_SECONDS
        assert policy.wake_alarm == (scaling.wake_up_alarm is not None)
        if scaling.wake_up_alarm is None:
            continue
        alarm = template[compute.get_logical_id(scaling.wake_up_alarm.node.default_child)]["Properties"]
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 1
        periods = {q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q}
        assert periods == {METRIC_PERIOD_SECONDS}
        steps = [r["Properties"]["StepScalingPolicyConfiguration"] for r in template.values()
                 if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
                 and r["Properties"].get("PolicyType") == "StepScaling"
                 and r["Properties"]["ScalingTargetId"] == {"Ref": compute.get_logical_id(
                     scaling.target.node.default_child)}]
        assert len(steps) == 1
        assert steps[0]["AdjustmentType"] == "ExactCapacity"
        assert steps[0]["Cooldown"] == WAKE_STEP_COOLDOWN_SECONDS
        assert [a["ScalingAdjustment"] for a in steps[0]["StepAdjustments"]] == [1]


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
