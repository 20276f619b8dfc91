"""One redrive invocation, independent of the Lambda runtime: the handler and `ops --local` both call it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from jobfleet_contract.attributes import Message, job_id, redrive_count
from jobfleet_contract.status import JobStatusStore
from redrive import SERVICE_NAME
from redrive.ledger import CopyLedger
from redrive.mover import DEFAULT_STOP_MARGIN_MILLIS, SelectiveMover
from redrive.native import list_move_tasks, start_move_task
from redrive.ratelimit import TokenBucket
from redrive.request import InvalidEvent, QueuePair, StatusRequest, parse_event

logger = Logger(service=SERVICE_NAME, child=True)


def run_redrive(
    event: Any,
    *,
    sqs: Any,
    tier_queues: Mapping[str, QueuePair],
    max_redrives: int | None,
    remaining_millis: Callable[[], int],
    status_store: JobStatusStore | None = None,
    ledger: CopyLedger | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop_margin_millis: int = DEFAULT_STOP_MARGIN_MILLIS,
) -> dict[str, Any]:
    """Acts on one event; an event that cannot be acted on yields {"error": reason}."""
    try:
        request = parse_event(event, tier_queues)
    except InvalidEvent as invalid:
        logger.warning("invalid redrive event", reason=str(invalid))
        return {"error": str(invalid)}
    if isinstance(request, StatusRequest):
        return list_move_tasks(sqs, request.dlq_url)
    if request.uses_native_move(quarantine_enabled=max_redrives is not None):
        return start_move_task(sqs, request.queues, request.rate_per_second)
    mover = SelectiveMover(
        sqs,
        request,
        max_redrives=max_redrives,
        remaining_millis=remaining_millis,
        rate_limiter=None if request.rate_per_second is None else TokenBucket(request.rate_per_second),
        sleep=sleep,
        on_moved=None if status_store is None else _marker(status_store),
        ledger=ledger,
        stop_margin_millis=stop_margin_millis,
    )
    return mover.run().as_result()


def _marker(status_store: JobStatusStore) -> Callable[[Sequence[Message]], None]:
    def mark_redriven(messages: Sequence[Message]) -> None:
        for message in messages:
            identifier = job_id(message)
            if identifier is None:
                continue
            try:
                # The copy's generation: a worker's write of it is newer than this "queued".
                status_store.mark_redriven(identifier, redrive_count(message) + 1)
            except ClientError as error:
                # Bookkeeping only: the job is back on its queue whatever the table says.
                logger.warning("could not mark job queued", jobId=identifier, error=str(error))

    return mark_redriven
