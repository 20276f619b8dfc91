"""Every log group the app creates: retention, removal and encryption as the environment sets them.

With `app.log_encryption = "kms"` a group is encrypted with its stack's log key
(stacks/constructs/keys.py); otherwise CloudWatch's own encryption, with the checkov skip and the
cfn-guard waiver that the environment's config states. Retention below a year carries the
environment's CT.CLOUDWATCH.PR.2 waiver (the config refuses that retention without one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from jobfleet_config.config import (
    GUARD_MIN_RETENTION_DAYS,
    LOG_ENCRYPTION_CONTROL,
    LOG_RETENTION_CONTROL,
    EnvironmentConfig,
)
from stacks.checkov import skip_check
from stacks.constructs.keys import stack_log_key
from stacks.guard import suppress
from stacks.nag import acknowledge_report
from stacks.retention import log_retention, removal_policy

_CLOUDWATCH_ENCRYPTION_REASON = (
    "app.log_encryption = \"cloudwatch\" in this environment: CloudWatch Logs encrypts the group "
    "at rest with service-managed keys; it holds job ids, types, outcomes and error types")


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """How an environment keeps its log groups; what every construct with a log group takes."""

    retention_days: int
    # True: the stack's customer-managed log key; False: CloudWatch's own encryption.
    kms: bool
    removal_policy: cdk.RemovalPolicy
    # The environment's waivers of the two log-group controls (only those it sets).
    waivers: Mapping[str, str]

    @classmethod
    def of(cls, config: EnvironmentConfig) -> LogSettings:
        return cls(retention_days=config.app.log_retention_days,
                   kms=config.app.log_encryption == "kms",
                   removal_policy=removal_policy(config.app),
                   waivers={control: reason for control, reason in config.guard.waivers.items()
                            if control in (LOG_RETENTION_CONTROL, LOG_ENCRYPTION_CONTROL)})

    def with_retention(self, days: int) -> LogSettings:
        return dataclasses.replace(self, retention_days=days)


def project_log_group(scope: Construct, construct_id: str, *, settings: LogSettings,
                      **props) -> logs.LogGroup:
    """A log group (further props as for aws_logs.LogGroup) kept and encrypted as `settings` say."""
    days = settings.retention_days
    key = stack_log_key(scope, removal_policy=settings.removal_policy) if settings.kms else None
    props.setdefault("removal_policy", settings.removal_policy)
    group = logs.LogGroup(scope, construct_id, retention=log_retention(days), encryption_key=key,
                          **props)
    if days < GUARD_MIN_RETENTION_DAYS:
        suppress(group, LOG_RETENTION_CONTROL, settings.waivers[LOG_RETENTION_CONTROL])
    if key is None:
        skip_check(group, "CKV_AWS_158", _CLOUDWATCH_ENCRYPTION_REASON)
        suppress(group, LOG_ENCRYPTION_CONTROL, settings.waivers[LOG_ENCRYPTION_CONTROL])
        acknowledge_report(group, "CloudWatchLogGroupEncrypted",
                           settings.waivers[LOG_ENCRYPTION_CONTROL])
    return group
