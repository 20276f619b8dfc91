"""The redrive's copy ledger: DLQ message ids whose copy is already in the target queue.

Written after a copy is accepted and before its original is deleted; a later run that meets the
original again (its delete failed) deletes it instead of sending a second copy. Only the window
between the send and this write can still duplicate (at-least-once, as SQS itself). Ledger items
live in the job status table under their own key prefix (jobfleet_contract.status.LEDGER_PREFIX;
the API answers 404 for them: they carry no status). The ledger is bookkeeping: when the table
fails, the redrive goes on without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from jobfleet_contract.status import EXPIRES_AT, JOB_ID, LEDGER_PREFIX
from redrive import SERVICE_NAME

logger = Logger(service=SERVICE_NAME, child=True)

# A DLQ keeps a message at most 14 days: a ledger entry is useless after that.
LEDGER_TTL_SECONDS = 14 * 86_400
BATCH_GET_LIMIT = 100


class CopyLedger:
    """`table` is a boto3 DynamoDB Table resource (the job status table)."""

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def record_copied(self, message_ids: Iterable[str]) -> None:
        expires = int(self._clock()) + LEDGER_TTL_SECONDS
        for message_id in message_ids:
            try:
                self._table.update_item(
                    Key={JOB_ID: LEDGER_PREFIX + message_id},
                    UpdateExpression="SET #expires = :expires",
                    ExpressionAttributeNames={"#expires": EXPIRES_AT},
                    ExpressionAttributeValues={":expires": expires},
                )
            except (ClientError, BotoCoreError) as error:
                logger.warning("could not record the copy in the ledger", messageId=message_id,
                               error=str(error))

    def copied(self, message_ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        # The resource's own client: it (de)serializes plain Python values, as the Table does.
        resource = self._table.meta.client
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [{JOB_ID: LEDGER_PREFIX + message_id}
                    for message_id in wanted[start:start + BATCH_GET_LIMIT]]
            # Ledger items are a key and a TTL: no projection needed.
            request = {self._table.name: {"Keys": keys, "ConsistentRead": True}}
            try:
                # Unprocessed keys count as "not copied": at worst a duplicate, never a loss.
                response = resource.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as error:
                logger.warning("could not read the copy ledger", error=str(error))
                continue
            for item in response.get("Responses", {}).get(self._table.name, []):
                found.add(str(item[JOB_ID]).removeprefix(LEDGER_PREFIX))
        return found
