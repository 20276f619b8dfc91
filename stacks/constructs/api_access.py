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

from jobfleet_config.config import AuthConfig
from jobfleet_contract.environment import ApiAuth, auth_scopes
from stacks.logs import LogSettings, project_log_group
from stacks.nag import acknowledge

# Scope names on the resource server; tokens carry them as `<audience>/<name>` (auth_scopes).
SCOPES = {"submit": "submit", "read": "read", "readAny": "read-any"}
# Access tokens live one hour: a leaked one is useful for no longer than that.
ACCESS_TOKEN_VALIDITY = cdk.Duration.hours(1)
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesAmazonIpReputationList")


def api_auth(auth: AuthConfig, audience: str, issuer_url: str | None) -> ApiAuth:
    """The API's access settings; `issuer_url` is the provisioned pool's, if any."""
    if auth.mode == "none":
        return ApiAuth(rate_limit_per_client=auth.rate_limit_per_client)
    return ApiAuth(mode="jwt", issuer=issuer_url or auth.issuer, audience=audience,
                   scopes=auth_scopes(audience),
                   rate_limit_per_client=auth.rate_limit_per_client)


class TokenIssuer(Construct):
    """`issuer_url` (the `iss` of its tokens), `token_url`, and the producer `client`.

    `audience` is the resource server's identifier; the Cognito domain is `domain_prefix` followed
    by the account ID (Cognito domain prefixes are global).
    """

    def __init__(self, scope: Construct, construct_id: str, *, audience: str, domain_prefix: str,
                 removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
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
            deletion_protection=removal_policy == cdk.RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
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
                domain_prefix=f"{domain_prefix}-{cdk.Aws.ACCOUNT_ID}"))
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
    """`name` names the web ACL, its metrics and (prefixed aws-waf-logs-) its log group."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, requests_per_ip: int,
                 logs: LogSettings, load_balancer: elbv2.IApplicationLoadBalancer) -> None:
        super().__init__(scope, construct_id)
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
                    limit=requests_per_ip, aggregate_key_type="IP")),
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            visibility_config=_visibility(f"{name}-requests-per-ip")))
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", name=name,
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(name), rules=rules)
        wafv2.CfnWebACLAssociation(self, "Association", resource_arn=load_balancer.load_balancer_arn,
                                   web_acl_arn=self.web_acl.attr_arn)
        # WAF only delivers to log groups whose name starts with aws-waf-logs-.
        self.log_group = project_log_group(self, "Logs", settings=logs,
                                           log_group_name=f"aws-waf-logs-{name}")
        wafv2.CfnLoggingConfiguration(
            self, "Logging", resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[self.log_group.log_group_arn])


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True)
