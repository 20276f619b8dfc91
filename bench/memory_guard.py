"""Memory guard: 50 jobs that each allocate ~100 MB, against a 600 MB limit.

Baseline: the seeds' shape, every received message started at once (unbounded concurrency).
JobFleet: WORKER_CONCURRENCY 16 (deliberately more than fits) with the memory guard measuring this
process's RSS against a 600 MB limit (WORKER_MEMORY_LIMIT_MIB; in a container the cgroup limit is
used). Each contender runs in its own process; prints each one's peak RSS, whether the limit was
crossed, and last ``ratio: <JobFleet peak RSS / baseline peak RSS>``.
Run: ``.venv/bin/python bench/memory_guard.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from _harness import (
    child_or_main,
    counted_sqs_client,
    fill,
    make_queue,
    peak_rss_mib,
    run_contender,
    sqs_client,
    start_moto,
)

JOBS = 50
JOB_MIB = 100
LIMIT_MIB = 600
CONCURRENCY = 16
# glibc otherwise raises its mmap threshold after the first big free, keeping later blocks on the heap
# where RSS never shrinks; the image sets the same (see Dockerfile).
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def allocate_like_a_parser(payload, ctx=None) -> None:
    """~100 MB built up over ~0.5 s in 10 MB chunks (touched, so it is resident), held 0.3 s, released."""
    chunks = []
    for _ in range(JOB_MIB // 10):
        chunks.append(b"x" * (10 * 1024 * 1024))
        time.sleep(0.05)
    time.sleep(0.3)
    del chunks


def baseline(queue_url: str) -> int:
    client, _ = counted_sqs_client()
    threads = []
    while len(threads) < JOBS:
        for message in client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):

            def run(message=message):
                allocate_like_a_parser(json.loads(message["Body"])["payload"])
                client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

            thread = threading.Thread(target=run)
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join()
    return 0


def jobfleet(queue_url: str, dlq_url: str) -> int:
    from worker import job
    from worker.config import WorkerConfig
    from worker.lifecycle import TaskProtection
    from worker.memory import memory_reader
    from worker.observability import Metrics
    from worker.runtime import Worker
    from worker.transport import SqsTransport

    finished = {"count": 0}
    lock = threading.Lock()

    @job("bench.allocate")
    def allocate(payload, ctx):
        allocate_like_a_parser(payload, ctx)
        with lock:
            finished["count"] += 1

    client, _ = counted_sqs_client()
    config = WorkerConfig(
        queue_url=queue_url,
        dlq_url=dlq_url,
        concurrency=CONCURRENCY,
        tier="bench",
        memory_limit_bytes=LIMIT_MIB * 1024 * 1024,
        health_file="/tmp/jobfleet-bench.health",
    )
    pauses = {"count": 0}

    class CountingMetrics(Metrics):
        def memory_pause(self, used_fraction):
            pauses["count"] += 1

    with open("/dev/null", "w") as sink:
        worker = Worker(
            config,
            SqsTransport(client, queue_url, dlq_url),
            memory_reader=memory_reader(config.memory_limit_bytes),
            protection=TaskProtection(None, 1),
            metrics=CountingMetrics("bench", sink),
        )
        threading.Thread(target=worker.run, daemon=True).start()
        while not (finished["count"] == JOBS and worker.held_count == 0):
            time.sleep(0.01)
        worker.request_stop("benchmark done")
    return pauses["count"]


def child(mode: str, queue_url: str, dlq_url: str) -> None:
    started = time.monotonic()
    pauses = baseline(queue_url) if mode == "baseline" else jobfleet(queue_url, dlq_url)
    print(
        json.dumps(
            {"seconds": time.monotonic() - started, "peak_rss_mib": peak_rss_mib(), "memory_pauses": pauses}
        ),
        flush=True,
    )


def main() -> None:
    server, _ = start_moto()
    try:
        sqs = sqs_client()
        results = {}
        for mode in ("baseline", "jobfleet"):
            queue_url, dlq_url = make_queue(sqs)
            fill(sqs, queue_url, JOBS, "bench.allocate", {})
            results[mode] = run_contender(Path(__file__), mode, queue_url, dlq_url, CHILD_ENV)
    finally:
        server.stop()
    print(f"jobs: {JOBS} x ~{JOB_MIB} MB, limit: {LIMIT_MIB} MB (MiB figures below)")
    print(f"{'contender':<40}{'peak RSS MiB':>14}{'limit crossed':>15}{'seconds':>9}{'pauses':>8}")
    labels = {
        "baseline": "baseline (unbounded concurrency)",
        "jobfleet": f"JobFleet (concurrency {CONCURRENCY} + memory guard)",
    }
    for mode, label in labels.items():
        r = results[mode]
        crossed = "YES" if r["peak_rss_mib"] > LIMIT_MIB else "no"
        print(
            f"{label:<40}{r['peak_rss_mib']:>14.1f}{crossed:>15}{r['seconds']:>9.1f}{r['memory_pauses']:>8}"
        )
    print(f"ratio: {results['jobfleet']['peak_rss_mib'] / results['baseline']['peak_rss_mib']:.3f}")


if __name__ == "__main__":
    child_or_main(child, main)
