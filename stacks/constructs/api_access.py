"""Who may reach the job API: the token issuer it trusts (optionally a Cognito user pool made
here), the settings the API container gets for it, and the WAF on the public ALB.

- `TokenIssuer`: a Cognito user pool for machine clients (no users sign in: no self sign-up, no
  password flows), a resource server whose identifier is the API's audience with the scopes
  `submit`, `read` and `read-any`, a Cognito domain serving the OAuth2 token endpoint, and one app
  client with a secret for the client-credentials flow holding `submit` and `read` (producers add
  their own clients the same way; an operator client gets `read-any`).
- `api_auth`: what the API container is told about it (its AUTH_* variables, worker/auth.py).
- `ApiFirewall`: a regional web ACL with AWS managed rule groups (common rule set, known bad
  inputs, Amazon IP reputation list) and a per-IP rate rule, associated with the ALB, logging
  blocked requests to CloudWatch Logs.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from jobfleet_config.config import EnvironmentConfig
from jobfleet_contract.environment import ApiAuth, auth_scopes
from stacks.logs import project_log_group
from stacks.nag import acknowledge
from stacks.retention import removal_policy

# Scope names on the resource server; tokens carry them as `<audience>/<name>` (auth_scopes).
SCOPES = {"submit": "submit", "read": "read", "readAny": "read-any"}
# Access tokens live one hour: a leaked one is useful for no longer than that.
ACCESS_TOKEN_VALIDITY = cdk.Duration.hours(1)
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesAmazonIpReputationList")


def api_auth(config: EnvironmentConfig, issuer_url: str | None) -> ApiAuth:
    """The API's access settings; `issuer_url` is the provisioned pool's, if any."""
    auth = config.auth
    if auth.mode == "none":
        return ApiAuth(rate_limit_per_client=auth.rate_limit_per_client)
    return ApiAuth(mode="jwt", issuer=issuer_url or auth.issuer, audience=config.auth_audience,
                   scopes=auth_scopes(config.auth_audience),
                   rate_limit_per_client=auth.rate_limit_per_client)


class TokenIssuer(Construct):
    """`issuer_url` (the `iss` of its tokens), `token_url`, and the producer `client`."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        audience = config.auth_audience
        self.user_pool = cognito.UserPool(
            self, "Pool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True),
            account_recovery=cognito.AccountRecovery.NONE,
            password_policy=cognito.PasswordPolicy(min_length=14, require_digits=True,
                                                   require_lowercase=True, require_uppercase=True,
                                                   require_symbols=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            deletion_protection=config.app.retain,
            removal_policy=removal_policy(config.app),
        )
        acknowledge(self.user_pool, "COG8",
                    "Machine-to-machine pool: only the client-credentials flow is enabled and no "
                    "user ever signs in, so the Plus plan's sign-in threat protection has nothing to watch.")
        server = self.user_pool.add_resource_server(
            "Api", identifier=audience,
            scopes=[cognito.ResourceServerScope(scope_name=SCOPES["submit"], scope_description="Submit jobs"),
                    cognito.ResourceServerScope(scope_name=SCOPES["read"],
                                                scope_description="Read the jobs this client submitted"),
                    cognito.ResourceServerScope(scope_name=SCOPES["readAny"],
                                                scope_description="Read any job (operators)")])
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"{config.resource_name('jobs')}-{cdk.Aws.ACCOUNT_ID}"))
        self.client = self.user_pool.add_client(
            "Producer",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[cognito.OAuthScope.resource_server(server, cognito.ResourceServerScope(
                            scope_name=SCOPES["submit"], scope_description="Submit jobs")),
                        cognito.OAuthScope.resource_server(server, cognito.ResourceServerScope(
                            scope_name=SCOPES["read"], scope_description="Read own jobs"))]),
            access_token_validity=ACCESS_TOKEN_VALIDITY,
            prevent_user_existence_errors=True,
        )
        self.issuer_url = self.user_pool.user_pool_provider_url
        self.token_url = f"{self.domain.base_url()}/oauth2/token"


class ApiFirewall(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                 load_balancer: elbv2.IApplicationLoadBalancer) -> None:
        super().__init__(scope, construct_id)
        name = config.resource_name("api")
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group, priority=priority,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=group)),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=_visibility(f"{name}-{group}"))
            for priority, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(wafv2.CfnWebACL.RuleProperty(
            name="RequestsPerIp", priority=len(rules),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=config.api.waf_requests_per_ip, aggregate_key_type="IP")),
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            visibility_config=_visibility(f"{name}-requests-per-ip")))
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", name=name,
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(name), rules=rules)
        wafv2.CfnWebACLAssociation(self, "Association", resource_arn=load_balancer.load_balancer_arn,
                                   web_acl_arn=self.web_acl.attr_arn)
        # WAF only delivers to log groups whose name starts with aws-waf-logs-.
        self.log_group = project_log_group(self, "Logs", config=config,
                                           log_group_name=f"aws-waf-logs-{name}")
        wafv2.CfnLoggingConfiguration(
            self, "Logging", resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[self.log_group.log_group_arn])


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True)
