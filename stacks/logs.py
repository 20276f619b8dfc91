"""Every log group the app creates: retention, removal and encryption from the config.

With `app.log_encryption = "kms"` a group is encrypted with its stack's log key
(stacks/constructs/keys.py); otherwise CloudWatch's own encryption, with the checkov skip and the
cfn-guard waiver that the environment's config states. Retention below a year carries the
environment's CT.CLOUDWATCH.PR.2 waiver (the config refuses that retention without one).
"""

from __future__ import annotations

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


def project_log_group(scope: Construct, construct_id: str, *, config: EnvironmentConfig,
                      retention_days: int | None = None, **props) -> logs.LogGroup:
    """A log group (further props as for aws_logs.LogGroup) kept and encrypted as configured."""
    days = config.app.log_retention_days if retention_days is None else retention_days
    key = stack_log_key(scope, config.app)
    props.setdefault("removal_policy", removal_policy(config.app))
    group = logs.LogGroup(scope, construct_id, retention=log_retention(days), encryption_key=key,
                          **props)
    if days < GUARD_MIN_RETENTION_DAYS:
        suppress(group, LOG_RETENTION_CONTROL, config.guard.waivers[LOG_RETENTION_CONTROL])
    if key is None:
        skip_check(group, "CKV_AWS_158", _CLOUDWATCH_ENCRYPTION_REASON)
        suppress(group, LOG_ENCRYPTION_CONTROL, config.guard.waivers[LOG_ENCRYPTION_CONTROL])
        acknowledge_report(group, "CloudWatchLogGroupEncrypted",
                           config.guard.waivers[LOG_ENCRYPTION_CONTROL])
    return group
