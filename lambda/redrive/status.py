"""Marks redriven jobs queued again in the job status table.

A direct UpdateItem rather than the worker's JobStatusStore: the worker package is not deployed
with this function.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError


class JobStatusTable:
    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._now = now

    def mark_queued(self, job_id: str) -> bool:
        """Sets the job back to queued; False when the table has no such job (nothing is created)."""
        try:
            self._dynamodb.update_item(
                TableName=self._table_name,
                Key={"jobId": {"S": job_id}},
                UpdateExpression="SET #status = :queued, updatedAt = :now",
                ConditionExpression="attribute_exists(jobId)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":queued": {"S": "queued"},
                    ":now": {"S": self._now().isoformat()},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
