"""Marks redriven jobs queued again in the job status table.

A direct UpdateItem rather than the worker's JobStatusStore (the worker package is not deployed
with this function), with the same transition rule as its mark_queued: only a dead-lettered or
failed job goes back to queued, and its attempt fields are cleared.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

# worker.status states.
QUEUED, FAILED, DEAD_LETTERED = "queued", "failed", "dead-lettered"


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStatusTable:
    def __init__(self, dynamodb: Any, table_name: str, now: Callable[[], str] = _iso_now) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._now = now

    def mark_queued(self, job_id: str) -> bool:
        """False when the table refused: no such job (nothing is created) or one not in a failed state."""
        try:
            self._dynamodb.update_item(
                TableName=self._table_name,
                Key={"jobId": {"S": job_id}},
                UpdateExpression=(
                    "SET #status = :queued, updatedAt = :now REMOVE startedAt, finishedAt, lastError"
                ),
                ConditionExpression="attribute_exists(jobId) AND #status IN (:deadLettered, :failed)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":queued": {"S": QUEUED},
                    ":deadLettered": {"S": DEAD_LETTERED},
                    ":failed": {"S": FAILED},
                    ":now": {"S": self._now()},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
