"""Access control in the templates: token auth wired into the API, the provisioned Cognito issuer,
the WAF on the public ALB, and an internal (VPC-only) ALB with an open-API warning where allowed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from cdk_app.app import add_environments, feature_flags
from jobfleet_config.config import load_environment
from stacks.constructs.api_access import MANAGED_RULE_GROUPS

ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def templates(stages) -> dict[str, Template]:
    return {name: Template.from_stack(stage.compute) for name, stage in stages.items()}


def _api_environment(template: Template) -> dict[str, Any]:
    for task in template.find_resources("AWS::ECS::TaskDefinition").values():
        (container,) = task["Properties"]["ContainerDefinitions"]
        if container["Name"] == "Api":
            return {e["Name"]: e["Value"] for e in container["Environment"]}
    raise AssertionError("no API task definition")


@pytest.mark.parametrize("env", ENVS)
def test_the_api_requires_tokens_from_the_provisioned_issuer(templates, env):
    template = templates[env]
    environment = _api_environment(template)
    assert environment["AUTH_MODE"] == "jwt"
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    # iss of the pool's tokens: https://cognito-idp.<region>.amazonaws.com/<pool id>
    assert pool_id in json.dumps(environment["AUTH_ISSUER"])
    audience = f"jobfleet-{env}-api"
    assert environment["AUTH_AUDIENCE"] == audience
    assert json.loads(environment["AUTH_SCOPES"]) == {
        "submit": f"{audience}/submit", "read": f"{audience}/read", "readAny": f"{audience}/read-any"}
    assert float(environment["RATE_LIMIT_PER_CLIENT"]) > 0


@pytest.mark.parametrize("env", ENVS)
def test_the_issuer_is_a_machine_to_machine_cognito_pool(templates, env):
    template = templates[env]
    template.has_resource_properties("AWS::Cognito::UserPool", {
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True}})
    template.has_resource_properties("AWS::Cognito::UserPoolResourceServer", {
        "Identifier": f"jobfleet-{env}-api",
        "Scopes": [Match.object_like({"ScopeName": "submit"}), Match.object_like({"ScopeName": "read"}),
                   Match.object_like({"ScopeName": "read-any"})]})
    clients = template.find_resources("AWS::Cognito::UserPoolClient")
    (client,) = clients.values()
    props = client["Properties"]
    assert props["AllowedOAuthFlows"] == ["client_credentials"]
    assert props["GenerateSecret"] is True
    assert sorted(scope.split("/")[-1] for scope in _scope_names(props["AllowedOAuthScopes"])) == [
        "read", "submit"]
    template.resource_count_is("AWS::Cognito::UserPoolDomain", 1)


def _scope_names(scopes: list[Any]) -> list[str]:
    return [s if isinstance(s, str) else json.dumps(s).rsplit("/", 1)[-1].strip('"]}') for s in scopes]


def test_prod_has_the_managed_rule_groups_on_its_public_alb(templates):
    template = templates["prod"]
    (acl_id, acl), = template.find_resources("AWS::WAFv2::WebACL").items()
    rules = acl["Properties"]["Rules"]
    groups = [r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in rules
              if "ManagedRuleGroupStatement" in r["Statement"]]
    assert groups == list(MANAGED_RULE_GROUPS)
    assert any("RateBasedStatement" in r["Statement"] for r in rules)
    assert acl["Properties"]["Scope"] == "REGIONAL"
    (alb_id,) = template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")
    template.has_resource_properties("AWS::WAFv2::WebACLAssociation", {
        "ResourceArn": {"Ref": alb_id}, "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]}})
    template.has_resource_properties("AWS::WAFv2::LoggingConfiguration", {
        "ResourceArn": {"Fn::GetAtt": [acl_id, "Arn"]}})


def test_dev_skips_the_waf_as_configured(templates):
    templates["dev"].resource_count_is("AWS::WAFv2::WebACL", 0)


@pytest.fixture(scope="module")
def internal_open_dev() -> cdk.Stage:
    """One more synth: dev with an internal ALB and no auth (allowed outside prod, with a warning)."""
    dev = load_environment("dev")
    config = dataclasses.replace(dev, api=dataclasses.replace(dev.api, internal=True),
                                 auth=dataclasses.replace(dev.auth, mode="none"))
    open_config = dataclasses.replace(dev, name="devopen", auth=dataclasses.replace(dev.auth, mode="none"))
    app = cdk.App(context=feature_flags())
    stages = add_environments(app, [config, open_config])
    app.synth()
    return {stage.config.name: stage for stage in stages}


def test_an_internal_alb_admits_only_the_vpc_and_gets_no_auth_or_waf(internal_open_dev):
    stage = internal_open_dev["dev"]
    template = Template.from_stack(stage.compute)
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"})
    for group in template.find_resources("AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0", rule
    template.resource_count_is("AWS::WAFv2::WebACL", 0)
    template.resource_count_is("AWS::Cognito::UserPool", 0)
    assert _api_environment(template)["AUTH_MODE"] == "none"
    Annotations.from_stack(stage.compute).has_no_warning("*", Match.string_like_regexp("OPEN"))


def test_an_open_dev_api_synthesizes_with_a_warning(internal_open_dev):
    stage = internal_open_dev["devopen"]
    Annotations.from_stack(stage.compute).has_warning("*", Match.string_like_regexp("the job API is OPEN"))
