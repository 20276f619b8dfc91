"""Fixtures for the redrive Lambda: a fresh DLQ/target pair on the shared moto server per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

# No X-Ray daemon in tests; set before any test module imports the handler (Tracer reads it then).
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")


class FakeContext:
    """A Lambda context whose remaining time drops by `millis_per_call` on every query."""

    function_name = "jobfleet-test-redrive"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:jobfleet-test-redrive"
    aws_request_id = "test-request"

    def __init__(self, remaining_millis: int = 900_000, millis_per_call: int = 0) -> None:
        self._remaining = remaining_millis
        self._millis_per_call = millis_per_call

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._remaining
        self._remaining -= self._millis_per_call
        return remaining


def dead_letter(
    job_type: str = "report",
    *,
    error_type: str | None = "TimeoutError",
    failed_at: datetime | None = None,
    redrive_count: str | None = None,
    redrive_count_type: str = "Number",
    job_id: str | None = None,
    extra_attributes: dict[str, dict[str, Any]] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """A SendMessageBatch entry shaped like a message the worker dead-lettered."""
    job_id = job_id or str(uuid.uuid4())
    failed_at = failed_at or datetime.now(UTC)
    attributes: dict[str, dict[str, Any]] = {
        "jobfleet.jobType": {"DataType": "String", "StringValue": job_type},
        "jobfleet.failedAt": {"DataType": "String", "StringValue": failed_at.isoformat()},
        "jobfleet.attempt": {"DataType": "String", "StringValue": "5"},
    }
    if error_type is not None:
        attributes["jobfleet.errorType"] = {"DataType": "String", "StringValue": error_type}
    if redrive_count is not None:
        attributes["jobfleet.redriveCount"] = {"DataType": redrive_count_type, "StringValue": redrive_count}
    attributes.update(extra_attributes or {})
    if body is None:
        body = json.dumps({"jobId": job_id, "type": job_type, "payload": {"n": 1},
                           "submittedAt": "2026-01-01T00:00:00+00:00"})
    return {"MessageBody": body, "MessageAttributes": attributes}


@dataclass
class QueuePairOnMoto:
    sqs: Any
    dlq_url: str
    target_url: str

    def put_dead_letters(self, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), 10):
            chunk = entries[start:start + 10]
            response = self.sqs.send_message_batch(
                QueueUrl=self.dlq_url,
                Entries=[{"Id": str(index), **entry} for index, entry in enumerate(chunk)],
            )
            assert not response.get("Failed")

    def take_all(self, queue_url: str) -> list[dict[str, Any]]:
        """Receives every visible message, hiding each for the rest of the test."""
        taken: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return taken
            taken.extend(messages)

    def bodies(self, queue_url: str) -> list[dict[str, Any]]:
        return [json.loads(message["Body"]) for message in self.take_all(queue_url)]

    def visible_count(self, queue_url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


@pytest.fixture()
def queues(sqs: Any) -> Iterator[QueuePairOnMoto]:
    name = f"redrive-{uuid.uuid4().hex[:12]}"
    target_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    yield QueuePairOnMoto(sqs=sqs, dlq_url=dlq_url, target_url=target_url)
    sqs.delete_queue(QueueUrl=dlq_url)
    sqs.delete_queue(QueueUrl=target_url)


# Test modules are imported with --import-mode=importlib and cannot import this conftest: the
# helpers reach them as fixtures.
@pytest.fixture(name="dead_letter")
def dead_letter_factory() -> Any:
    return dead_letter


@pytest.fixture(name="fake_context")
def fake_context_class() -> type[FakeContext]:
    return FakeContext
