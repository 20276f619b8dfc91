"""Send a job straight to a tier queue, as any producer may (the API is the other way in).

Function::

    from worker.producer import send_job
    job_id = send_job(sqs_client, queue_url, "report", {"customerId": "c-1"})

Command line (prints the jobId; bad input: one line on stderr, exit 2; SQS refused: exit 1)::

    python -m worker.producer --queue-name jobfleet-dev-standard --type report \
        --payload '{"customerId": "c-1"}'
    python -m worker.producer --queue-url https://sqs.../jobfleet-dev-standard --type report \
        --payload-file p.json

The body is the envelope of docs/worker.md (``{"jobId", "type", "payload", "submittedAt"}``); the
worker validates it again, so a producer in another language only has to write the same JSON. Sending
directly skips the API's checks (known job type, payload limits, idempotency) and its ``queued`` status
record: the worker creates the record when the job starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from jobfleet_contract.envelope import Envelope, parse_envelope
from jobfleet_contract.errors import InvalidEnvelope
from jobfleet_contract.timestamps import iso_now

SQS_MAX_MESSAGE_BYTES = 262_144  # the limit every SQS queue accepts without raising MaximumMessageSize


def build_envelope(job_type: str, payload: dict[str, Any] | None, job_id: str | None = None) -> str:
    """The message body for a job; raises InvalidEnvelope (naming the field) for anything a worker refuses."""
    if not isinstance(payload, dict):
        raise InvalidEnvelope("payload must be a JSON object")
    body = Envelope(job_id or str(uuid.uuid4()), job_type, payload, iso_now()).to_json()
    parse_envelope(body)  # the worker's own validation: what passes here, the worker accepts
    size = len(body.encode())
    if size > SQS_MAX_MESSAGE_BYTES:
        raise InvalidEnvelope(f"envelope is {size} bytes; SQS takes at most {SQS_MAX_MESSAGE_BYTES}")
    return body


def send_job(sqs, queue_url: str, job_type: str, payload: dict[str, Any], job_id: str | None = None) -> str:
    """Send one job to ``queue_url``; returns its jobId (generated when not given)."""
    body = build_envelope(job_type, payload, job_id)
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    return json.loads(body)["jobId"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.producer", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue-url", help="tier queue URL")
    target.add_argument("--queue-name", help="tier queue name, <app>-<env>-<tier> (looked up in the region)")
    parser.add_argument("--type", required=True, dest="job_type", help="job type")
    payload = parser.add_mutually_exclusive_group()
    payload.add_argument("--payload", default="{}", help="payload as a JSON object (default {})")
    payload.add_argument("--payload-file", type=Path, help="file holding the payload JSON object")
    parser.add_argument("--job-id", help="jobId to use (default: a new UUID)")
    args = parser.parse_args(argv)

    try:
        text = args.payload_file.read_text() if args.payload_file else args.payload
        data = json.loads(text)
        body = build_envelope(args.job_type, data if isinstance(data, dict) else None, args.job_id)
    except (OSError, ValueError, InvalidEnvelope) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = boto3.client("sqs")
    try:
        queue_url = args.queue_url or sqs.get_queue_url(QueueName=args.queue_name)["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    except (BotoCoreError, ClientError) as exc:
        print(f"error: not sent: {exc}", file=sys.stderr)
        return 1
    print(json.loads(body)["jobId"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
