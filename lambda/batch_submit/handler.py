"""The batch feed: each SQS message of a batch tier becomes one AWS Batch job.

Every value this passes is a documented string: Lambda's SQS event gives each message's `body` as
the string the producer sent, and SubmitJob's `parameters` is a map of strings, so the job
parameter `envelope` is the envelope's text byte for byte, whatever the producer's JSON looks
like (an EventBridge Pipe would parse a JSON body, and what a string-typed Batch parameter then
receives is not documented), and `generation` is the message's redrive generation as a decimal
string (jobfleet_contract/batch.py). The job definition hands them to
`python -m worker run-one --envelope Ref::envelope --generation Ref::generation`.

A message whose SubmitJob fails (throttled, a request above Batch's 30 KiB limit) or whose
`jobfleet.redriveCount` is not a count is reported as a batch item failure: it stays in the queue,
is retried after the visibility timeout and, after the queue's maxReceiveCount, moves to the tier
DLQ untouched. The others are deleted by Lambda.

Environment: jobfleet_contract.environment.BatchFeedSettings (JOB_QUEUE, JOB_DEFINITION, JOB_NAME),
built by the stack with batch_feed_environment; jobfleet_contract ships in the asset beside this package.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from jobfleet_contract.attributes import MalformedMessage, from_lambda_record, redrive_count
from jobfleet_contract.batch import job_parameters
from jobfleet_contract.environment import BatchFeedSettings, aws_region

log = logging.getLogger("jobfleet.batch_submit")
log.setLevel(logging.INFO)
_client = None


def _batch():
    global _client
    if _client is None:
        # AWS_REGION is what Lambda sets; boto3 reads only AWS_DEFAULT_REGION.
        _client = boto3.client("batch", region_name=aws_region(os.environ))
    return _client


def submit(record: dict[str, Any], settings: BatchFeedSettings) -> str:
    """Submit the job of one SQS record; returns the Batch job id."""
    response = _batch().submit_job(
        jobName=settings.job_name, jobQueue=settings.job_queue, jobDefinition=settings.job_definition,
        parameters=job_parameters(record["body"], redrive_count(from_lambda_record(record))))
    return response["jobId"]


def handler(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    # Read per invocation (a dict lookup): a missing variable fails every invocation with one
    # ConfigError naming it, and Lambda retries the whole batch until the queue dead-letters it.
    settings = BatchFeedSettings.from_env(os.environ)
    failures = []
    for record in event.get("Records", []):
        try:
            job_id = submit(record, settings)
        except (ClientError, BotoCoreError, MalformedMessage) as exc:
            log.error(json.dumps({"event": "submit-failed", "messageId": record["messageId"],
                                  "error": str(exc)[:500]}))
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            log.info(json.dumps({"event": "submitted", "messageId": record["messageId"],
                                 "batchJobId": job_id}))
    return {"batchItemFailures": failures}
