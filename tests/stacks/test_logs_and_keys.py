"""Log groups follow the config (retention, customer-managed key per stack); every key denies
grants that are not for AWS resources; containers have a memory hard limit (the Control Tower controls
these fixes answer, asserted as intent)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

ENVS = ["dev", "staging", "prod"]


def _stacks(stage):
    return [s for s in (stage.network, stage.stateful, stage.compute, stage.batch, stage.operations)
            if s is not None]


@pytest.mark.parametrize("env", ENVS)
def test_log_groups_keep_and_encrypt_as_configured(stages, env):
    stage = stages[env]
    app = stage.config.app
    for stack in _stacks(stage):
        template = Template.from_stack(stack)
        groups = template.find_resources("AWS::Logs::LogGroup")
        keys = template.find_resources("AWS::KMS::Key")
        log_keys = {k for k, v in keys.items() if "log groups" in v["Properties"].get("Description", "")}
        for logical_id, group in groups.items():
            props = group["Properties"]
            expected_days = (stage.config.network.flow_log_retention_days if "FlowLogs" in logical_id
                             else app.log_retention_days)
            assert props["RetentionInDays"] == expected_days, logical_id
            if app.log_encryption == "kms":
                # A key of the same template (Control Tower accepts no cross-stack reference).
                (key_id,) = log_keys
                assert props["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}, logical_id
            else:
                assert "KmsKeyId" not in props and not log_keys
        if not groups:
            assert not log_keys, f"{stack.stack_name}: a log key without log groups"


def test_prod_defaults_keep_logs_a_year_under_customer_managed_keys(stages):
    app = stages["prod"].config.app
    assert app.log_retention_days >= 365 and app.log_encryption == "kms"
    assert stages["prod"].config.network.flow_log_retention_days >= 365
    assert not stages["prod"].config.guard.waivers


@pytest.mark.parametrize("env", ENVS)
def test_every_key_denies_grants_not_for_aws_resources(stages, env):
    for stack in _stacks(stages[env]):
        for logical_id, key in Template.from_stack(stack).find_resources("AWS::KMS::Key").items():
            statements = key["Properties"]["KeyPolicy"]["Statement"]
            assert {
                "Sid": "DenyGrantsExceptForAwsResources", "Effect": "Deny", "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant", "Resource": "*",
                "Condition": {"BoolIfExists": {"kms:GrantIsForAWSResource": "false",
                                               "aws:PrincipalIsAWSService": "false"}},
            } in statements, logical_id
            assert key["Properties"]["EnableKeyRotation"] is True


@pytest.mark.parametrize("env", ENVS)
def test_every_container_has_a_memory_hard_limit_equal_to_its_task(stages, env):
    template = Template.from_stack(stages[env].compute)
    for task in template.find_resources("AWS::ECS::TaskDefinition").values():
        (container,) = task["Properties"]["ContainerDefinitions"]
        assert container["Memory"] == int(task["Properties"]["Memory"])
