"""Lambda entry point: reads the function's configuration from its environment, runs one redrive.

Environment (redrive.settings): TIER_QUEUES (JSON {tier: {"queueUrl", "dlqUrl"}}), MAX_REDRIVES
(optional), STATUS_TABLE and STATUS_TTL_DAYS (optional job status table to mark redriven jobs queued).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobfleet_contract.status import JobStatusStore
from redrive import SERVICE_NAME
from redrive.ledger import CopyLedger
from redrive.service import run_redrive
from redrive.settings import RedriveSettings

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)


@cache
def _client(service: Literal["sqs"]) -> Any:
    # Reused across warm invocations; AWS_ENDPOINT_URL (local mode, tests) is honoured by boto3.
    return boto3.client(service)


@cache
def _dynamodb() -> Any:
    return boto3.resource("dynamodb")


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Misconfiguration raises: it is a deployment fault for the failure alarm, not an operator error.
    settings = RedriveSettings.from_env(os.environ)
    status_store = None
    if settings.status_table:
        status_store = JobStatusStore(_dynamodb().Table(settings.status_table),
                                      ttl_days=settings.status_ttl_days)
    return run_redrive(
        event,
        sqs=_client("sqs"),
        tier_queues=settings.tier_queues,
        max_redrives=settings.max_redrives,
        remaining_millis=context.get_remaining_time_in_millis,
        status_store=status_store,
        ledger=CopyLedger(_dynamodb().Table(settings.status_table)) if settings.status_table else None,
    )
