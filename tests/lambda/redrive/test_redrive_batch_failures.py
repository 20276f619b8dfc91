"""Batch-tier DLQ records: EventBridge writes {"envelope", "failure"} (no message attributes).

The redrive filters read the failure record, and the copy sent back is the original envelope, so a
redriven batch job runs again instead of failing as an invalid envelope.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from redrive.request import QueuePair
from redrive.service import run_redrive

from jobfleet_contract.attributes import body_for_copy, error_type, failed_at, job_id, job_type
from jobfleet_contract.envelope import batch_failure_record


def _record(job: str, *, failed: datetime, error: str = "BatchJobFailed") -> str:
    envelope = json.dumps({"jobId": job, "type": "analysis", "payload": {"steps": 3},
                           "submittedAt": "2026-11-23T10:00:00+00:00"})
    return json.dumps({"envelope": envelope, "failure": {
        "source": "aws.batch", "errorType": error, "reason": "Essential container in task exited",
        "jobId": "b-1", "failedAt": failed.strftime("%Y-%m-%dT%H:%M:%SZ"), "attempts": []}})


def test_failure_record_fields_are_read_like_worker_attributes():
    failed = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    message = {"Body": _record("job-1", failed=failed), "MessageAttributes": {}}
    assert batch_failure_record(message["Body"]) is not None
    assert (job_id(message), job_type(message)) == ("job-1", "analysis")
    assert error_type(message) == "BatchJobFailed"
    assert failed_at(message) == failed
    assert json.loads(body_for_copy(message))["jobId"] == "job-1"


def test_a_worker_dead_letter_is_not_a_failure_record():
    body = json.dumps({"jobId": "j", "type": "report", "payload": {}, "submittedAt": "2026-11-23T10:00:00Z"})
    message = {"Body": body}
    assert batch_failure_record(message["Body"]) is None and body_for_copy(message) == body


def test_redrive_sends_back_the_original_envelope_filtered_by_failure_record(queues):
    now = datetime.now(UTC)
    queues.put_dead_letters([
        {"MessageBody": _record("old-failure", failed=now - timedelta(hours=3))},
        {"MessageBody": _record("new-failure", failed=now)},
        {"MessageBody": _record("timeout", failed=now, error="JobTimeout")},
    ])
    tiers = {"batch": QueuePair(dlq_url=queues.dlq_url, target_url=queues.target_url)}
    result: dict[str, Any] = run_redrive(
        {"tier": "batch", "mode": "selective",
         "filter": {"errorTypes": ["BatchJobFailed"], "olderThanSeconds": 3600}},
        sqs=queues.sqs, tier_queues=tiers, max_redrives=3, remaining_millis=lambda: 900_000)
    assert (result["matched"], result["moved"]) == (1, 1)
    (moved,) = queues.bodies(queues.target_url)
    assert moved == {"jobId": "old-failure", "type": "analysis", "payload": {"steps": 3},
                     "submittedAt": "2026-11-23T10:00:00+00:00"}
    assert queues.visible_count(queues.dlq_url) == 2
