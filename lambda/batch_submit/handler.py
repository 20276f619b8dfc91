"""The batch feed: each SQS message of a batch tier becomes one AWS Batch job.

Every value this passes is a documented string: Lambda's SQS event gives each message's `body` as
the string the producer sent, and SubmitJob's `parameters` is a map of strings, so the job
parameter `envelope` is the envelope's text byte for byte, whatever the producer's JSON looks
like (an EventBridge Pipe would parse a JSON body, and what a string-typed Batch parameter then
receives is not documented). The job definition hands it to `python -m worker run-one --envelope`.

A message whose SubmitJob fails (throttled, a request above Batch's 30 KiB limit) is reported as
a batch item failure: it stays in the queue, is retried after the visibility timeout and, after
the queue's maxReceiveCount, moves to the tier DLQ untouched. The others are deleted by Lambda.

Environment: JOB_QUEUE, JOB_DEFINITION (ARNs or names), JOB_NAME.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

ENVELOPE_PARAMETER = "envelope"  # = the job definition's `Ref::envelope`

log = logging.getLogger("jobfleet.batch_submit")
log.setLevel(logging.INFO)
_client = None


def _batch():
    global _client
    if _client is None:
        # AWS_REGION is what Lambda sets; boto3 reads only AWS_DEFAULT_REGION.
        _client = boto3.client("batch", region_name=os.environ.get("AWS_REGION")
                               or os.environ.get("AWS_DEFAULT_REGION"))
    return _client


def submit(record: dict[str, Any], env: dict[str, str] = os.environ) -> str:
    """Submit the job of one SQS record; returns the Batch job id."""
    response = _batch().submit_job(
        jobName=env["JOB_NAME"], jobQueue=env["JOB_QUEUE"], jobDefinition=env["JOB_DEFINITION"],
        parameters={ENVELOPE_PARAMETER: record["body"]})
    return response["jobId"]


def handler(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    failures = []
    for record in event.get("Records", []):
        try:
            job_id = submit(record)
        except (ClientError, BotoCoreError) as exc:
            log.error(json.dumps({"event": "submit-failed", "messageId": record["messageId"],
                                  "error": str(exc)[:500]}))
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            log.info(json.dumps({"event": "submitted", "messageId": record["messageId"],
                                 "batchJobId": job_id}))
    return {"batchItemFailures": failures}
