"""Redrive throughput: the selective mover (batches of 10) against a naive one-at-a-time mover.

    .venv/bin/python bench/redrive.py [--messages N]

Both run in the same process against the same moto server (stock, started here), each on a fresh
DLQ/target pair seeded with the same N worker-shaped dead letters, and each must end with all N in
its target and none in its DLQ. Both end on one long poll of 1 s that finds the DLQ empty.
The last line is `ratio: X` (selective messages/s over naive messages/s).

By default moto gets the same two speed-only patches as the 5,000-message test: stock moto scans
every stored message several times for each message it receives or stores (so both movers would
measure moto's queue scans, not their own calls). `--stock-moto` measures without them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
from redrive.service import run_redrive

from jobfleet_contract.attributes import attributes_for_copy

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_letter_entries(count: int) -> list[dict[str, Any]]:
    failed_at = datetime.now(UTC).isoformat()
    entries = []
    for index in range(count):
        job_id = str(uuid.uuid4())
        entries.append(
            {
                "Id": str(index % 10),
                "MessageBody": json.dumps(
                    {"jobId": job_id, "type": "report", "payload": {"n": index}, "submittedAt": failed_at}
                ),
                "MessageAttributes": {
                    "jobfleet.jobType": {"DataType": "String", "StringValue": "report"},
                    "jobfleet.errorType": {"DataType": "String", "StringValue": "TimeoutError"},
                    "jobfleet.errorMessage": {"DataType": "String", "StringValue": "upstream timed out"},
                    "jobfleet.attempt": {"DataType": "String", "StringValue": "5"},
                    "jobfleet.workerId": {"DataType": "String", "StringValue": "bench"},
                    "jobfleet.failedAt": {"DataType": "String", "StringValue": failed_at},
                },
            }
        )
    return entries


def fresh_queues(sqs: Any, label: str, count: int) -> tuple[str, str]:
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    target_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    entries = dead_letter_entries(count)
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=dlq_url, Entries=entries[start : start + 10])
    return dlq_url, target_url


def move_selective(sqs: Any, dlq_url: str, target_url: str) -> int:
    result = run_redrive(
        {"dlqUrl": dlq_url, "targetUrl": target_url, "mode": "selective"},
        sqs=sqs,
        tier_queues={},
        max_redrives=None,
        remaining_millis=lambda: 900_000,
    )
    return result["moved"]


def move_naive(sqs: Any, dlq_url: str, target_url: str) -> int:
    """Receive one, send its copy, delete it: what a hand-written redrive script usually does."""
    moved = 0
    while True:
        response = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return moved
        message = messages[0]
        sqs.send_message(
            QueueUrl=target_url, MessageBody=message["Body"], MessageAttributes=attributes_for_copy(message)
        )
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
        moved += 1


def visible(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def measure(sqs: Any, label: str, mover: Any, count: int) -> float:
    dlq_url, target_url = fresh_queues(sqs, label, count)
    started = time.perf_counter()
    moved = mover(sqs, dlq_url, target_url)
    elapsed = time.perf_counter() - started
    if moved != count or visible(sqs, target_url) != count or visible(sqs, dlq_url) != 0:
        raise SystemExit(f"{label}: moved {moved} of {count}; the benchmark is invalid")
    rate = count / elapsed
    print(f"{label:<9} {count} messages in {elapsed:7.2f} s = {rate:8.1f} messages/s", flush=True)
    return rate


def patch_moto_queue_scans() -> None:
    """Retention check from the queue's own field and moto's clock from time.time(): same answers."""
    import moto.sqs.models as moto_sqs
    from moto.core.utils import unix_time

    def within_retention(backend: Any, queue_name: str, message: Any) -> bool:
        retention_seconds = int(backend.get_queue(queue_name).message_retention_period)
        return retention_seconds + message.sent_timestamp / 1000 > time.time()

    moto_sqs.SQSBackend.is_message_valid_based_on_retention_period = within_retention
    moto_sqs.unix_time = lambda dt=None: time.time() if dt is None else unix_time(dt)
    moto_sqs.unix_time_millis = lambda dt=None: time.time() * 1000 if dt is None else unix_time(dt) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="dead letters per mover (default 1000)")
    parser.add_argument("--stock-moto", action="store_true", help="without the speed-only moto patches")
    args = parser.parse_args()
    count = args.messages
    if not args.stock_moto:
        patch_moto_queue_scans()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request from moto's server
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        sqs = boto3.client(
            "sqs",
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        variant = "stock moto" if args.stock_moto else "moto with the queue-scan patches"
        print(f"{variant} on 127.0.0.1:{port}, {count} dead letters per mover, 6 attributes each")
        selective = measure(sqs, "selective", move_selective, count)
        naive = measure(sqs, "naive", move_naive, count)
        print(f"ratio: {selective / naive:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
