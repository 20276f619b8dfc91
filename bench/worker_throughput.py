"""Throughput: the seeds' loop (receive 1, process, delete 1, sequential) vs JobFleet at concurrency 16.

One moto server, 2,000 messages per contender, a handler sleeping 50 ms. Each contender runs in its own
process so peak RSS is its own. Prints messages/s, SQS API calls per message, peak RSS, and last
``ratio: <JobFleet msg/s / baseline msg/s>``.  Run: ``.venv/bin/python bench/worker_throughput.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from _harness import (
    child_or_main,
    counted_sqs_client,
    feed,
    make_queue,
    peak_rss_mib,
    run_contender,
    sqs_client,
    start_moto,
)

MESSAGES = 2000
HANDLER_SECONDS = 0.05
CONCURRENCY = 16


def baseline(queue_url: str) -> dict:
    client, calls = counted_sqs_client()
    done = 0
    started = time.monotonic()
    while done < MESSAGES:
        messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=20)
        for message in messages.get("Messages", []):
            json.loads(message["Body"])
            time.sleep(HANDLER_SECONDS)
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            done += 1
    return {"seconds": time.monotonic() - started, "calls": calls["count"]}


def jobfleet(queue_url: str, dlq_url: str) -> dict:
    from worker import job
    from worker.config import WorkerConfig
    from worker.lifecycle import TaskProtection
    from worker.memory import memory_reader
    from worker.observability import Metrics
    from worker.runtime import Worker
    from worker.transport import SqsTransport

    finished = {"count": 0}
    lock = threading.Lock()

    @job("bench.sleep")
    def sleep_job(payload, ctx):
        time.sleep(HANDLER_SECONDS)
        with lock:
            finished["count"] += 1

    client, calls = counted_sqs_client()
    config = WorkerConfig(
        queue_url=queue_url,
        dlq_url=dlq_url,
        concurrency=CONCURRENCY,
        tier="bench",
        health_file="/tmp/jobfleet-bench.health",
    )
    with open("/dev/null", "w") as sink:
        worker = Worker(
            config,
            SqsTransport(client, queue_url, dlq_url),
            memory_reader=memory_reader(),
            protection=TaskProtection(None, 1),
            metrics=Metrics("bench", sink),
        )
        started = time.monotonic()
        threading.Thread(target=worker.run, daemon=True).start()
        while not (finished["count"] == MESSAGES and worker.held_count == 0):  # all run *and* deleted
            time.sleep(0.01)
        seconds = time.monotonic() - started
        api_calls = calls["count"]
        worker.request_stop("benchmark done")
    return {"seconds": seconds, "calls": api_calls}


def child(mode: str, queue_url: str, dlq_url: str) -> None:
    result = baseline(queue_url) if mode == "baseline" else jobfleet(queue_url, dlq_url)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result), flush=True)


def main() -> None:
    server, _ = start_moto()
    try:
        sqs = sqs_client()
        results = {}
        for mode in ("baseline", "jobfleet"):
            queue_url, dlq_url = make_queue(sqs)
            feeder = feed(sqs, queue_url, MESSAGES, "bench.sleep", {})
            results[mode] = run_contender(Path(__file__), mode, queue_url, dlq_url)
            feeder.join()
    finally:
        server.stop()
    print(
        f"messages: {MESSAGES} (fed keeping ~100 queued), handler: {HANDLER_SECONDS * 1000:.0f} ms sleep, "
        "moto server on 127.0.0.1"
    )
    print(f"{'contender':<34}{'msg/s':>9}{'SQS calls/msg':>15}{'peak RSS MiB':>14}{'seconds':>9}")
    labels = {
        "baseline": "baseline (receive 1, sequential)",
        "jobfleet": f"JobFleet (concurrency {CONCURRENCY})",
    }
    for mode, label in labels.items():
        r = results[mode]
        print(
            f"{label:<34}{MESSAGES / r['seconds']:>9.1f}{r['calls'] / MESSAGES:>15.3f}"
            f"{r['peak_rss_mib']:>14.1f}{r['seconds']:>9.1f}"
        )
    print(f"ratio: {results['baseline']['seconds'] / results['jobfleet']['seconds']:.2f}")


if __name__ == "__main__":
    child_or_main(child, main)
