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
from botocore.exceptions import ClientError

log = logging.getLogger("worker.status")

QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD_LETTERED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "dead-lettered",
)
DEFAULT_TTL_DAYS = 30


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
    ) -> bool:
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
            remove=("startedAt", "finishedAt", "lastError"),
        )

    def mark_running(self, job_id: str, job_type: str, attempt: int) -> bool:
        return self._write(
            job_id,
            RUNNING,
            (QUEUED, RUNNING, FAILED),
            {"type": job_type, "tier": self._tier, "attempts": attempt, "startedAt": _iso_now()},
        )

    def mark_failed(self, job_id: str, job_type: str, attempt: int, error: str) -> bool:
        """An attempt failed and another will follow (or, for run-one, the Batch job failed)."""
        return self._write(
            job_id,
            FAILED,
            (QUEUED, RUNNING, FAILED),
            {"type": job_type, "tier": self._tier, "attempts": attempt, "lastError": error[:1000]},
        )

    def mark_succeeded(self, job_id: str, job_type: str, attempt: int, result: dict | None = None) -> bool:
        """``result``: where the job's result is stored (worker.results), kept on the record as ``result``."""
        fields = {"type": job_type, "tier": self._tier, "attempts": attempt, "finishedAt": _iso_now()}
        if result:
            fields["result"] = result
        return self._write(job_id, SUCCEEDED, (QUEUED, RUNNING, FAILED), fields)

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
        )

    def get(self, job_id: str) -> dict | None:
        return self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")


def status_store_from_env(env=os.environ) -> JobStatusStore | None:
    table_name = env.get("STATUS_TABLE")
    if not table_name:
        return None
    ttl_days = float(env.get("STATUS_TTL_DAYS") or DEFAULT_TTL_DAYS)
    return JobStatusStore(
        boto3.resource("dynamodb").Table(table_name), env.get("TIER") or "default", ttl_days
    )
