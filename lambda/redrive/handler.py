"""Lambda entry point: reads the function's configuration from its environment, runs one redrive.

Environment: TIER_QUEUES (JSON {tier: {"queueUrl", "dlqUrl"}}), MAX_REDRIVES (optional),
STATUS_TABLE (optional job status table to mark redriven jobs queued).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from redrive import SERVICE_NAME
from redrive.request import parse_tier_queues
from redrive.service import parse_max_redrives, run_redrive
from redrive.status import CopyLedger, JobStatusTable

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)


@cache
def _client(service: str) -> Any:
    # Reused across warm invocations; AWS_ENDPOINT_URL (local mode, tests) is honoured by boto3.
    return boto3.client(service)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Misconfiguration raises: it is a deployment fault for the failure alarm, not an operator error.
    tier_queues = parse_tier_queues(os.environ.get("TIER_QUEUES", "{}"))
    max_redrives = parse_max_redrives(os.environ.get("MAX_REDRIVES"))
    table_name = os.environ.get("STATUS_TABLE")
    return run_redrive(
        event,
        sqs=_client("sqs"),
        tier_queues=tier_queues,
        max_redrives=max_redrives,
        remaining_millis=context.get_remaining_time_in_millis,
        status_table=JobStatusTable(_client("dynamodb"), table_name) if table_name else None,
        ledger=CopyLedger(_client("dynamodb"), table_name) if table_name else None,
    )
