"""What the config keeps: CloudWatch Logs retention, and what stack deletion does to data."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs

from jobfleet_config.config import LOG_RETENTION_DAYS, AppConfig

# aws_logs.RetentionDays lists the same periods as LOG_RETENTION_DAYS, in the same order.
_BY_DAYS = dict(zip(LOG_RETENTION_DAYS, [r for r in logs.RetentionDays if r.name != "INFINITE"],
                    strict=True))


def log_retention(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]


def removal_policy(app: AppConfig) -> cdk.RemovalPolicy:
    """`app.removal_policy` for every resource that holds data (queues, tables, buckets, logs)."""
    return cdk.RemovalPolicy.RETAIN if app.retain else cdk.RemovalPolicy.DESTROY
