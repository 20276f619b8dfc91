"""What the redrive writes to the job status table: jobs marked queued, and its copy ledger.

A direct UpdateItem rather than the worker's JobStatusStore (the worker package is not deployed
with this function), with the same transition rule as its mark_queued: only a dead-lettered or
failed job goes back to queued, and its attempt fields are cleared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from redrive import SERVICE_NAME

logger = Logger(service=SERVICE_NAME, child=True)

# worker.status states.
QUEUED, FAILED, DEAD_LETTERED = "queued", "failed", "dead-lettered"
# Ledger items share the table under their own key prefix (the API answers 404 for them: no status).
LEDGER_PREFIX = "redrive#"
# A DLQ keeps a message at most 14 days: a ledger entry is useless after that.
LEDGER_TTL_SECONDS = 14 * 86_400
BATCH_GET_LIMIT = 100


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


class CopyLedger:
    """DLQ message ids whose copy is already in the target queue.

    Written after a copy is accepted and before its original is deleted; a later run that meets
    the original again (the delete failed) deletes it instead of sending a second copy. Only the
    window between the send and this write can still duplicate (at-least-once, as SQS itself).
    The ledger is bookkeeping: when the table fails, the redrive goes on without it.
    """

    def __init__(self, dynamodb: Any, table_name: str, clock: Callable[[], float] = time.time) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._clock = clock

    def record_copied(self, message_ids: Iterable[str]) -> None:
        expires = str(int(self._clock()) + LEDGER_TTL_SECONDS)
        for message_id in message_ids:
            try:
                self._dynamodb.update_item(
                    TableName=self._table_name,
                    Key={"jobId": {"S": LEDGER_PREFIX + message_id}},
                    UpdateExpression="SET expiresAt = :expires",
                    ExpressionAttributeValues={":expires": {"N": expires}},
                )
            except (ClientError, BotoCoreError) as error:
                logger.warning("could not record the copy in the ledger", messageId=message_id,
                               error=str(error))

    def copied(self, message_ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [{"jobId": {"S": LEDGER_PREFIX + message_id}}
                    for message_id in wanted[start:start + BATCH_GET_LIMIT]]
            request = {self._table_name: {"Keys": keys, "ConsistentRead": True,
                                          "ProjectionExpression": "jobId"}}
            try:
                # Unprocessed keys count as "not copied": at worst a duplicate, never a loss.
                response = self._dynamodb.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as error:
                logger.warning("could not read the copy ledger", error=str(error))
                continue
            for item in response.get("Responses", {}).get(self._table_name, []):
                found.add(item["jobId"]["S"].removeprefix(LEDGER_PREFIX))
        return found
