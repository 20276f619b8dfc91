"""Job status in DynamoDB (optional: STATUS_TABLE). Table key ``jobId`` (string).

Every write is conditional so that transitions only move forward: SQS is at-least-once, and a late
redelivery of a job that already succeeded (or was dead-lettered) must not flip it back to running or
failed. ``mark_queued`` also accepts a dead-lettered/failed job, because a redrive queues it again.
Methods return False when the condition refused the write (the caller logs, the job is unaffected).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from worker.config import aws_region, env_number

log = logging.getLogger("worker.status")

QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD_LETTERED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "dead-lettered",
)
DEFAULT_TTL_DAYS = 30
# Every call bounded: a table that connects and never answers costs at most ~2 x (2 + 3) s per write.
_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStatusStore:
    def __init__(self, table, tier: str = "default", ttl_days: float = DEFAULT_TTL_DAYS) -> None:
        self._table = table
        self._tier = tier
        self._ttl_seconds = int(ttl_days * 86400)

    def _write(
        self,
        job_id: str,
        status: str,
        allowed_from: tuple[str, ...],
        fields: dict,
        remove: tuple[str, ...] = (),
        attempt_condition: str = "",
    ) -> bool:
        """Conditional update. ``attempt_condition`` ("<=" or "=") compares the stored ``attempts`` with
        this write's attempt, so an older attempt finishing late cannot overwrite a newer one."""
        fields = {
            **fields,
            "status": status,
            "updatedAt": _iso_now(),
            "expiresAt": int(time.time()) + self._ttl_seconds,
        }
        names = {f"#{key}": key for key in fields} | {f"#{key}": key for key in remove}
        values = {f":{key}": value for key, value in fields.items()}
        update = "SET " + ", ".join(f"#{key} = :{key}" for key in fields)
        if remove:
            update += " REMOVE " + ", ".join(f"#{key}" for key in remove)
        allowed = [f":from{i}" for i in range(len(allowed_from))]
        values.update(dict(zip(allowed, allowed_from, strict=True)))
        condition = f"attribute_not_exists(jobId) OR #status IN ({', '.join(allowed)})"
        if attempt_condition:
            names["#attempts"] = "attempts"
            condition = (
                f"attribute_not_exists(jobId) OR (#status IN ({', '.join(allowed)}) AND "
                f"(attribute_not_exists(#attempts) OR #attempts {attempt_condition} :attempts))"
            )
        try:
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            log.info("status transition refused", extra={"jobId": job_id, "to": status})
            return False
        return True

    def mark_queued(self, job_id: str, job_type: str, tier: str | None = None) -> bool:
        """A new job (API) or a dead-lettered/failed one being redriven; never a running or finished one."""
        return self._write(
            job_id,
            QUEUED,
            (DEAD_LETTERED, FAILED),
            {"type": job_type, "tier": tier or self._tier},
            remove=("startedAt", "finishedAt", "lastError", "attempts"),
        )

    def mark_running(self, job_id: str, job_type: str, attempt: int) -> bool:
        return self._write(
            job_id,
            RUNNING,
            (QUEUED, RUNNING, FAILED),
            {"type": job_type, "tier": self._tier, "attempts": attempt, "startedAt": _iso_now()},
            attempt_condition="<=",
        )

    def mark_released(self, job_id: str, job_type: str, attempt: int) -> bool:
        """Handed back to the queue by a draining worker: running -> queued, only if the record is still
        this attempt's (a newer attempt elsewhere owns it otherwise)."""
        return self._write(
            job_id, QUEUED, (RUNNING,), {"type": job_type, "attempts": attempt}, attempt_condition="="
        )

    def mark_failed(self, job_id: str, job_type: str, attempt: int, error: str) -> bool:
        """An attempt failed and another will follow (or, for run-one, the Batch job failed)."""
        return self._write(
            job_id,
            FAILED,
            (QUEUED, RUNNING, FAILED),
            {"type": job_type, "tier": self._tier, "attempts": attempt, "lastError": error[:1000]},
            attempt_condition="<=",
        )

    def mark_succeeded(self, job_id: str, job_type: str, attempt: int) -> bool:
        return self._write(
            job_id,
            SUCCEEDED,
            (QUEUED, RUNNING, FAILED),
            {"type": job_type, "tier": self._tier, "attempts": attempt, "finishedAt": _iso_now()},
            attempt_condition="<=",
        )

    def mark_dead_lettered(self, job_id: str, job_type: str, attempt: int, error: str) -> bool:
        return self._write(
            job_id,
            DEAD_LETTERED,
            (QUEUED, RUNNING, FAILED),
            {
                "type": job_type,
                "tier": self._tier,
                "attempts": attempt,
                "lastError": error[:1000],
                "finishedAt": _iso_now(),
            },
            attempt_condition="<=",
        )

    def get(self, job_id: str) -> dict | None:
        return self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")


def status_store_from_env(env=os.environ) -> JobStatusStore | None:
    table_name = env.get("STATUS_TABLE")
    if not table_name:
        return None
    ttl_days = env_number(env, "STATUS_TTL_DAYS", DEFAULT_TTL_DAYS, minimum=1, maximum=3650)
    dynamodb = boto3.resource("dynamodb", region_name=aws_region(env), config=_CLIENT_CONFIG)
    return JobStatusStore(dynamodb.Table(table_name), env.get("TIER") or "default", ttl_days)
