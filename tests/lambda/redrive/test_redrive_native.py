"""Native mode and the status action through botocore's Stubber (moto has no message move tasks)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from redrive.request import QueuePair
from redrive.service import run_redrive

DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobfleet-prod-critical-dlq"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobfleet-prod-critical"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:jobfleet-prod-critical-dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:jobfleet-prod-critical"
TIERS = {"critical": QueuePair(dlq_url=DLQ_URL, target_url=QUEUE_URL)}


@pytest.fixture()
def stubbed_sqs():
    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_queue_attributes(stubber: Stubber, url: str, arn: str, depth: int) -> None:
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": arn, "ApproximateNumberOfMessages": str(depth)}},
        {"QueueUrl": url, "AttributeNames": ["QueueArn", "ApproximateNumberOfMessages"]},
    )


def redrive(client: Any, event: dict[str, Any], max_redrives: int | None = None) -> dict[str, Any]:
    return run_redrive(event, sqs=client, tier_queues=TIERS, max_redrives=max_redrives,
                       remaining_millis=lambda: 900_000)


def test_no_filter_and_no_quarantine_starts_a_native_move_task(stubbed_sqs):
    client, stubber = stubbed_sqs
    expect_queue_attributes(stubber, DLQ_URL, DLQ_ARN, 1234)
    expect_queue_attributes(stubber, QUEUE_URL, QUEUE_ARN, 0)
    stubber.add_response("start_message_move_task", {"TaskHandle": "task-1"},
                         {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN,
                          "MaxNumberOfMessagesPerSecond": 25})

    result = redrive(client, {"tier": "critical", "ratePerSecond": 25})

    assert result == {"mode": "native", "dryRun": False, "taskHandle": "task-1",
                      "approximateMessagesToMove": 1234, "examined": None, "matched": None, "moved": None,
                      "kept": None, "failed": None}


def test_explicit_native_mode_runs_even_with_quarantine_configured(stubbed_sqs):
    client, stubber = stubbed_sqs
    expect_queue_attributes(stubber, DLQ_URL, DLQ_ARN, 3)
    expect_queue_attributes(stubber, QUEUE_URL, QUEUE_ARN, 0)
    stubber.add_response("start_message_move_task", {"TaskHandle": "task-2"},
                         {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN})

    result = redrive(client, {"tier": "critical", "mode": "native"}, max_redrives=3)

    assert (result["mode"], result["taskHandle"]) == ("native", "task-2")


def test_a_refused_move_task_is_an_error_result(stubbed_sqs):
    client, stubber = stubbed_sqs
    expect_queue_attributes(stubber, DLQ_URL, DLQ_ARN, 3)
    expect_queue_attributes(stubber, QUEUE_URL, QUEUE_ARN, 0)
    stubber.add_client_error("start_message_move_task", service_error_code="InvalidParameterValue",
                             service_message="There is already a task running.")

    result = redrive(client, {"tier": "critical", "mode": "native"})

    assert result == {"error": "StartMessageMoveTask refused: There is already a task running."}


def test_status_lists_the_dlq_move_tasks(stubbed_sqs):
    client, stubber = stubbed_sqs
    expect_queue_attributes(stubber, DLQ_URL, DLQ_ARN, 42)
    stubber.add_response(
        "list_message_move_tasks",
        {"Results": [
            {"TaskHandle": "task-2", "Status": "RUNNING", "SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN,
             "MaxNumberOfMessagesPerSecond": 25, "ApproximateNumberOfMessagesMoved": 100,
             "ApproximateNumberOfMessagesToMove": 142, "StartedTimestamp": 1_772_359_200_000},
            {"Status": "FAILED", "SourceArn": DLQ_ARN, "ApproximateNumberOfMessagesMoved": 0,
             "FailureReason": "AccessDenied", "StartedTimestamp": 1_772_355_600_000},
        ]},
        {"SourceArn": DLQ_ARN, "MaxResults": 10},
    )

    result = redrive(client, {"action": "status", "tier": "critical"})

    assert result == {"action": "status", "dlqMessages": 42, "tasks": [
        {"status": "RUNNING", "taskHandle": "task-2", "startedAt": "2026-03-01T10:00:00+00:00", "moved": 100,
         "toMove": 142, "ratePerSecond": 25, "destinationArn": QUEUE_ARN, "failureReason": None},
        {"status": "FAILED", "taskHandle": None, "startedAt": "2026-03-01T09:00:00+00:00", "moved": 0,
         "toMove": None, "ratePerSecond": None, "destinationArn": None, "failureReason": "AccessDenied"},
    ]}


def test_an_invalid_event_touches_no_queue(stubbed_sqs):
    client, _ = stubbed_sqs
    assert redrive(client, {"tier": "critical", "dryrun": True}) == {
        "error": "unknown event key dryrun (allowed: dlqUrl, dryRun, filter, maxMessages, mode, "
                 "ratePerSecond, targetUrl, tier)"}
