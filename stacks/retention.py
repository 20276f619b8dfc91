"""CloudWatch Logs retention from a number of days in the config."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

from cdk_app.config import LOG_RETENTION_DAYS

# aws_logs.RetentionDays lists the same periods as LOG_RETENTION_DAYS, in the same order.
_BY_DAYS = dict(zip(LOG_RETENTION_DAYS, [r for r in logs.RetentionDays if r.name != "INFINITE"],
                    strict=True))


def log_retention(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]
