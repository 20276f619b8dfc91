"""Native mode: SQS's own message move task (fast, server-side, but no filter, preview or counting)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from redrive.request import QueuePair


def _arn_and_depth(sqs: Any, queue_url: str) -> tuple[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
    )["Attributes"]
    return attributes["QueueArn"], int(attributes["ApproximateNumberOfMessages"])


def start_move_task(sqs: Any, queues: QueuePair, rate_per_second: float | None) -> dict[str, Any]:
    """Starts moving every DLQ message to the target queue; SQS does the work after this returns."""
    source_arn, depth = _arn_and_depth(sqs, queues.dlq_url)
    destination_arn, _ = _arn_and_depth(sqs, queues.target_url)
    params: dict[str, Any] = {"SourceArn": source_arn, "DestinationArn": destination_arn}
    if rate_per_second is not None:
        # The move task takes whole messages per second.
        params["MaxNumberOfMessagesPerSecond"] = max(1, int(rate_per_second))
    try:
        task_handle = sqs.start_message_move_task(**params)["TaskHandle"]
    except ClientError as error:
        # Typically a move task already running for this DLQ: the operator's answer is --status.
        return {"error": f"StartMessageMoveTask refused: {error.response['Error'].get('Message', error)}"}
    # Per-message counts are not known when the task starts; the status action reports them.
    return {
        "mode": "native",
        "dryRun": False,
        "taskHandle": task_handle,
        "approximateMessagesToMove": depth,
        "examined": None,
        "matched": None,
        "moved": None,
        "kept": None,
        "failed": None,
    }


def list_move_tasks(sqs: Any, dlq_url: str) -> dict[str, Any]:
    """The DLQ's recent move tasks, newest first, as SQS reports them."""
    source_arn, depth = _arn_and_depth(sqs, dlq_url)
    results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
    return {
        "action": "status",
        "dlqMessages": depth,
        "tasks": [
            {
                "status": task.get("Status"),
                "taskHandle": task.get("TaskHandle"),
                "startedAt": _iso_from_millis(task.get("StartedTimestamp")),
                "moved": task.get("ApproximateNumberOfMessagesMoved"),
                "toMove": task.get("ApproximateNumberOfMessagesToMove"),
                "ratePerSecond": task.get("MaxNumberOfMessagesPerSecond"),
                "destinationArn": task.get("DestinationArn"),
                "failureReason": task.get("FailureReason"),
            }
            for task in results
        ],
    }


def _iso_from_millis(millis: int | None) -> str | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat()
