"""Shared plumbing for the worker benchmarks: one moto server per run, each contender in its own process."""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


def start_moto() -> tuple[ThreadedMotoServer, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per SQS call otherwise
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
    )
    return server, endpoint


def make_queue(sqs, visibility_timeout: int = 60) -> tuple[str, str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})[
        "QueueUrl"
    ]
    return url, dlq


def fill(sqs, queue_url: str, count: int, job_type: str, payload: dict) -> None:
    for start in range(0, count, 10):
        fill_range(sqs, queue_url, start, min(10, count - start), job_type, payload)


def feed(sqs, queue_url: str, count: int, job_type: str, payload: dict, depth: int = 100) -> threading.Thread:
    """Send ``count`` messages from a background thread, keeping about ``depth`` visible.

    moto's SQS costs O(queue length) per call, so a 2,000-deep queue would make the emulator, not the
    consumer, the thing measured; a bounded backlog keeps its per-call cost flat for both contenders.
    """

    def run() -> None:
        sent = 0
        while sent < count:
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= depth:
                time.sleep(0.02)
                continue
            batch = min(10, count - sent)
            fill_range(sqs, queue_url, sent, batch, job_type, payload)
            sent += batch

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def fill_range(sqs, queue_url: str, first: int, count: int, job_type: str, payload: dict) -> None:
    """One SendMessageBatch (``count`` <= 10) of jobs numbered from ``first``."""
    sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {
                        "jobId": f"job-{first + i}",
                        "type": job_type,
                        "payload": payload,
                        "submittedAt": "2024-05-01T12:00:00Z",
                    }
                ),
            }
            for i in range(count)
        ],
    )


def run_contender(
    script: Path, mode: str, queue_url: str, dlq_url: str, extra_env: dict | None = None
) -> dict:
    """Run ``script --child MODE`` in a fresh interpreter and return the JSON it prints last.

    The script hands its command line to ``child_or_main``, which reads these arguments back."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "worker_image"), str(REPO), str(REPO / "bench")]),
        **(extra_env or {}),
    }
    result = subprocess.run(
        [sys.executable, str(script), "--child", mode, queue_url, dlq_url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_or_main(child: Callable[[str, str, str], None], main: Callable[[], None]) -> None:
    """A benchmark script's entry point: ``child(mode, queue_url, dlq_url)`` when run_contender started
    it, else ``main()``."""
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()


def counted_sqs_client():
    """An SQS client that counts its API calls (the figure that drives the SQS bill)."""
    from worker.transport import sqs_client

    client = sqs_client()
    calls = {"count": 0}

    def count(**_kwargs):
        calls["count"] += 1

    client.meta.events.register("before-call.sqs", count)
    return client, calls


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def sqs_client():
    return boto3.client("sqs", region_name=REGION)
